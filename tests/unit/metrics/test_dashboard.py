"""The dashboard's request metrics: labelled by route template and status class, never by raw path."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from rtap.metrics import DashboardMetrics, RequestMetrics


def test_requests_are_counted_per_route_template() -> None:
    metrics = DashboardMetrics()
    app = FastAPI()
    app.add_middleware(RequestMetrics, metrics=metrics)

    @app.get("/api/panels/{panel_id}")
    def panel(panel_id: str) -> dict[str, str]:
        if panel_id == "missing":
            raise HTTPException(404, "no such panel")
        return {"id": panel_id}

    client = TestClient(app)
    for path in ("/api/panels/a", "/api/panels/b", "/api/panels/missing", "/scanner/probe/1", "/scanner/probe/2"):
        client.get(path)
    registry = CollectorRegistry()
    registry.register(metrics)

    def requests(route: str, code: str) -> float | None:
        return registry.get_sample_value("rtap_dashboard_requests_total", {"route": route, "code": code})

    assert requests("/api/panels/{panel_id}", "2xx") == 2
    assert requests("/api/panels/{panel_id}", "4xx") == 1
    assert requests("other", "4xx") == 2
    routes = {s.labels["route"] for m in registry.collect() for s in m.samples if "route" in s.labels}
    assert routes == {"/api/panels/{panel_id}", "other"}
    count = registry.get_sample_value("rtap_dashboard_request_duration_seconds_count", {"route": "other"})
    assert count == 2
