"""The dashboard's metrics: requests per route and status class, and their latency.

A pure ASGI middleware (``create_app`` adds it), so every route is measured the same way. The ``route`` label
is the route's template (``/api/panels/{panel_id}``), never the raw path: a scanner requesting random URLs adds
no series (unmatched paths are ``route="other"``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, MutableMapping
from typing import Any

from prometheus_client import Counter, Histogram
from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class DashboardMetrics(Collector):
    """Counters and latency of the dashboard's HTTP API."""

    def __init__(self) -> None:
        self.requests = Counter(
            "rtap_dashboard_requests",
            "HTTP requests answered, by route template and status class (2xx, 4xx, 5xx).",
            ["route", "code"],
            registry=None,
        )
        self.panel_queries = Counter(
            "rtap_dashboard_panel_queries",
            "Panel answers by how they were made: ran (a warehouse query), cached (a result shared with other "
            "viewers of the panel and range), busy (refused: every query slot stayed taken).",
            ["outcome"],
            registry=None,
        )
        self.rate_limited = Counter(
            "rtap_dashboard_rate_limited",
            "Requests refused with 429 because their client address asked faster than "
            "RTAP_DASHBOARD_CLIENT_REQUESTS_PER_S after its burst (also counted in requests, route 'other').",
            registry=None,
        )
        self.duration = Histogram(
            "rtap_dashboard_request_duration_seconds",
            "Time to answer an HTTP request, by route template (panel queries run in the warehouse).",
            ["route"],
            buckets=REQUEST_BUCKETS_S,
            registry=None,
        )

    def collect(self) -> Iterator[Metric]:
        yield from self.requests.collect()
        yield from self.panel_queries.collect()
        yield from self.rate_limited.collect()
        yield from self.duration.collect()


class RequestMetrics:
    """ASGI middleware recording each HTTP request in a :class:`DashboardMetrics`."""

    def __init__(self, app: ASGIApp, metrics: DashboardMetrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status: MutableMapping[str, int] = {"code": 500}  # an exception before the response is a 500

        async def record_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self._app(scope, receive, record_status)
        finally:
            route = _route_template(scope)
            self._metrics.requests.labels(route, f"{status['code'] // 100}xx").inc()
            self._metrics.duration.labels(route).observe(time.perf_counter() - started)


def _route_template(scope: MutableMapping[str, Any]) -> str:
    route = scope.get("route")  # set by Starlette's router once a route matched
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "other"
