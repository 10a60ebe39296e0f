"""The dashboard API over a real, migrated chDB: every panel's SQL runs, answers are exact, bad input is 4xx."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from rtap.dashboard.api import create_app, run_panel
from rtap.dashboard.definition import load_definition, setting_parameters
from rtap.dashboard.server import serve_dashboard
from rtap.errors import PortInUseError
from rtap.settings import DashboardSettings, Settings, StreamSettings
from rtap.warehouse import WarehouseClient
from tests.support.seed import PAGES, minute_floor, seed_page_views, seeded_warehouse


@dataclass
class Warehouse:
    settings: Settings
    writer: WarehouseClient
    reader: WarehouseClient
    now: datetime


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    # A 20 s session gap: the seeded sessions that ended a minute ago count as ended, the one with an event
    # 20 s ago does not (the seeded watermark is 30 s behind now).
    # No result sharing between requests (RTAP_DASHBOARD_CACHE_TTL_S=0): tests here write and read at once; and
    # they ask faster than a page, from one client (the rate limit: tests/unit/dashboard/test_admission.py).
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("rtap-dashboard"),
        stream=StreamSettings(session_gap_s=20),
        dashboard=DashboardSettings(cache_ttl_s=0, client_burst=1_000_000),
    )
    now = datetime.now(UTC) - timedelta(seconds=1)
    with seeded_warehouse(settings, now) as (writer, reader):
        yield Warehouse(settings, writer, reader, now)


@pytest.fixture(scope="module")
def api(warehouse: Warehouse) -> TestClient:
    return TestClient(create_app(warehouse.settings, warehouse.reader))


def panel(api: TestClient, panel_id: str, **params: str) -> dict[str, Any]:
    response = api.get(f"/api/panels/{panel_id}", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def column(result: dict[str, Any], name: str) -> list[Any]:
    index = result["columns"].index(name)
    return [row[index] for row in result["rows"]]


def test_every_panel_runs_and_returns_data(api: TestClient) -> None:
    for panel_id, definition in load_definition().panels_by_id().items():
        result = panel(api, panel_id)
        assert result["chart"] == definition.chart.value
        assert result["row_count"] == len(result["rows"]) > 0, panel_id
        if definition.chart.value == "timeseries":
            assert result["types"][0].startswith("timestamp"), f"{panel_id}: time column is {result['types'][0]}"
            assert result["rows"][0][0].endswith("Z")
        # A format names a column the panel returns, and a numeric one: a typo would silently show no unit.
        for name in definition.formats:
            assert name in result["columns"], f"{panel_id}: formats names {name!r}, not a column"
            kind = result["types"][result["columns"].index(name)]
            assert kind.startswith(("int", "uint", "double", "float", "decimal")), f"{panel_id}.{name}: {kind}"


def test_clickstream_numbers_are_exact(api: TestClient) -> None:
    assert panel(api, "orders_revenue")["rows"] == [[30, 599.7]]  # 3 orders x 59.97 in each of 10 minutes
    active = panel(api, "active_users")
    assert column(active, "in_range") == [3]
    top = panel(api, "top_products")
    assert top["rows"] == [["p1", 30.0, 3], ["p2", 25.5, 1], ["p3", 5.0, 1]]
    funnel = panel(api, "conversion_funnel")
    assert funnel["rows"] == [["Session", 11], ["Added to cart", 7], ["Checkout", 4], ["Purchase", 3]]
    abandoned = panel(api, "abandoned_carts")  # s10 has a cart too, but its session is still open
    assert sorted(column(abandoned, "session_id")) == ["s3", "s4", "s5"]
    assert panel(api, "abandoned_cart_rate")["rows"] == [[3, 50.0]]
    assert column(panel(api, "bot_suspects"), "actor") == ["203.0.113.9"]


def test_browser_events_are_those_read_from_the_collectors_topic(api: TestClient) -> None:
    latest = panel(api, "browser_events")
    assert column(latest, "event_type") == ["product_view"]  # the seeded purchases came from the v1 topic
    assert column(latest, "page_url") == ["/shop/product.html?id=p1"]


def test_most_clicked_urls_are_the_page_views_per_page_in_the_range(api: TestClient, warehouse: Warehouse) -> None:
    """The previous system's chart, over its view (migration 0006): a click is a page view."""
    # Up to the newest minute, which another test rewrites: the nine minutes before it.
    newest = minute_floor(warehouse.now)
    in_range = {"from": (newest - timedelta(minutes=30)).isoformat(), "to": newest.isoformat()}
    clicks = {page: sum(10 * (i + 1) + minute for minute in range(1, 10)) for i, page in enumerate(PAGES)}
    expected = sorted(clicks.items(), key=lambda item: (-item[1], item[0]))
    assert panel(api, "most_clicked_urls", **in_range)["rows"] == [list(row) for row in expected]
    # The chosen range decides: one minute alone (five minutes back, a window no other test rewrites).
    minute = newest - timedelta(minutes=5)
    one_minute = {"from": minute.isoformat(), "to": (minute + timedelta(minutes=1)).isoformat()}
    rows = panel(api, "most_clicked_urls", **one_minute)["rows"]
    assert rows == [[page, 10 * (i + 1) + 5] for i, page in reversed(list(enumerate(PAGES)))]


def test_top_pages_chart_has_one_line_per_page_per_minute(api: TestClient, warehouse: Warehouse) -> None:
    views = panel(api, "page_views_top_pages")
    assert set(column(views, "page_url")) == set(PAGES)
    assert views["row_count"] == 10 * len(PAGES)
    # Five minutes back: a window no other test rewrites.
    minute = (minute_floor(warehouse.now) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    at_minute = {row[1]: row[2] for row in views["rows"] if row[0] == minute}
    assert at_minute == {page: 10 * (i + 1) + 5 for i, page in enumerate(PAGES)}


def test_pipeline_health_numbers_are_exact(api: TestClient) -> None:
    freshness = panel(api, "freshness")
    assert column(freshness, "freshness_s") == [1.5]
    assert column(freshness, "batches") == [30]
    assert panel(api, "rejected_totals")["rows"] == [[90, 60, 150]]
    assert panel(api, "kafka_lag_now")["rows"] == [[69, 69]]
    batches = panel(api, "recent_batches")
    assert column(batches, "batch_id") == list(range(29, 9, -1))
    assert sum(column(panel(api, "rejected_per_minute"), "records")) == 5  # 3 dead letters + 2 late events
    # Counted by class, as `rtap dlq reasons` counts them: two cuts of truncated JSON are one reason.
    assert panel(api, "dead_letter_reasons")["rows"] == [
        ["invalid JSON (unexpected end of data)", 2],
        ["event_type: must be one of page_view, ...", 1],
    ]


def test_a_newer_version_replaces_the_window_under_final(api: TestClient, warehouse: Warehouse) -> None:
    # What the stream job does when a later batch refines an open window: same key, higher version.
    seed_page_views(warehouse.writer, warehouse.now, minutes=1, version=2, extra_views=1000)
    views = panel(api, "page_views_top_pages")
    assert views["row_count"] == 10 * len(PAGES), "the refined window must not be counted twice"
    last_minute = minute_floor(warehouse.now).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    latest = {row[1]: row[2] for row in views["rows"] if row[0] == last_minute}
    assert latest == {page: 1000 + 10 * (i + 1) for i, page in enumerate(PAGES)}


def test_ended_session_panels_say_why_they_are_empty_until_a_session_has_ended(warehouse: Warehouse) -> None:
    """The same warehouse with a session gap longer than its history: no session has ended, so no abandoned cart
    can exist yet (a fresh stack's first 30 minutes), and the panels say so instead of showing a rate of 0 %."""
    settings = warehouse.settings.model_copy(update={"stream": StreamSettings(session_gap_s=3600)})
    fresh = TestClient(create_app(settings, warehouse.reader))
    carts = panel(fresh, "abandoned_carts")
    assert carts["rows"] == []
    assert carts["empty_note"].startswith("No session in this range has ended yet")
    assert panel(fresh, "abandoned_cart_rate")["rows"] == [[0, None]]  # no rate, not 0 %
    # With the 20 s gap sessions have ended: rows, and no note; an empty range says the same as the fresh stack.
    assert panel(TestClient(create_app(warehouse.settings, warehouse.reader)), "abandoned_carts")["empty_note"] is None
    assert panel(fresh, "abandoned_carts", **{"from": "2020-01-01T00:00:00Z", "to": "2020-01-01T01:00:00Z"})[
        "empty_note"
    ].startswith("No session in this range has ended yet")


def test_an_empty_range_gives_empty_rows_not_errors(api: TestClient) -> None:
    yesterday = {"from": "2020-01-01T00:00:00Z", "to": "2020-01-01T01:00:00Z"}
    assert panel(api, "events_by_type", **yesterday)["rows"] == []
    assert panel(api, "freshness", **yesterday)["rows"] == []
    assert panel(api, "orders_revenue", **yesterday)["rows"] == [[0, 0.0]]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "yesterday"}, "'from' is not an ISO 8601 date-time"),
        ({"to": "2024-13-01T00:00:00Z"}, "'to' is not an ISO 8601 date-time"),
        ({"from": "2024-01-02T00:00:00Z", "to": "2024-01-01T00:00:00Z"}, "must be before 'to'"),
        ({"from": "2024-01-01T00:00:00Z", "to": "2024-01-01T00:00:00Z"}, "must be before 'to'"),
        ({"from": "2024-01-01T00:00:00Z", "to": "2024-01-05T00:00:00Z"}, "at most 24 h is allowed"),
        ({"from": "2024-01-01T00:00:00Z'; DROP TABLE rtap.events; --"}, "is not an ISO 8601 date-time"),
    ],
)
def test_bad_ranges_are_400_with_a_reason(api: TestClient, params: dict[str, str], message: str) -> None:
    response = api.get("/api/panels/events_by_type", params=params)
    assert response.status_code == 400
    assert message in response.json()["detail"]


def test_unknown_panel_is_404(api: TestClient) -> None:
    response = api.get("/api/panels/no_such_panel")
    assert response.status_code == 404
    assert "no panel 'no_such_panel'" in response.json()["detail"]


def test_offsets_are_converted_to_utc(api: TestClient, warehouse: Warehouse) -> None:
    end = warehouse.now + timedelta(seconds=1)
    in_utc = panel(api, "rejected_totals", to=end.isoformat())
    in_cet = panel(api, "rejected_totals", to=end.astimezone().isoformat())
    assert in_utc["rows"] == in_cet["rows"]
    assert in_utc["range_to"] == in_cet["range_to"]


def test_results_are_row_limited(warehouse: Warehouse) -> None:
    views = load_definition().panels_by_id()["page_views_top_pages"]
    table, truncated = run_panel(
        warehouse.reader,
        views,
        warehouse.now - timedelta(hours=1),
        datetime.now(UTC),
        setting_values=setting_parameters(warehouse.settings),
        max_rows=7,
    )
    assert (table.num_rows, truncated) == (7, True)


def test_health_definition_openapi_and_page(api: TestClient) -> None:
    assert api.get("/api/health").json()["status"] == "ok"
    dashboards = api.get("/api/dashboards").json()
    assert [d["id"] for d in dashboards["dashboards"]] == ["clickstream", "pipeline"]
    assert dashboards["ranges"] == {"15m": 15, "1h": 60, "6h": 360, "24h": 1440}
    assert dashboards["collector_port"] == 8070  # the page links to the demo shop the collector serves
    openapi = api.get("/openapi.json").json()
    assert {"/api/health", "/api/dashboards", "/api/panels/{panel_id}"} <= set(openapi["paths"])
    page = api.get("/")
    assert page.status_code == 200
    assert '<script src="/static/plotly.min.js"' in page.text
    assert "$version" not in page.text
    plotly = api.get("/static/plotly.min.js")
    assert plotly.status_code == 200
    assert plotly.headers["content-type"].startswith("text/javascript")
    assert len(plotly.content) > 1_000_000
    assert api.get("/static/app.js").status_code == 200
    assert api.get("/static/../settings.py").status_code == 404


def test_served_in_a_thread_and_a_taken_port_is_one_line(warehouse: Warehouse, tmp_path: Path) -> None:
    with serve_dashboard(warehouse.settings, warehouse.reader, port=0) as server:
        assert httpx.get(f"{server.url}/api/health", timeout=5).json()["status"] == "ok"
        with pytest.raises(PortInUseError, match=rf"port 127.0.0.1:{server.port} for the dashboard"):
            serve_dashboard(warehouse.settings, warehouse.reader, port=server.port)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", server.port))  # released after stop()
