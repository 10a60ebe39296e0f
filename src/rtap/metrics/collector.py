"""The collector's metrics (``rtap collect``, served on its own ``/metrics``): requests by route and status,
events accepted and refused by reason, the time Kafka takes to acknowledge a request's events, and the sink's
health and queue.

Every label has a bounded set of values: routes are the route templates (unmatched paths are ``other``),
statuses the few the collector answers, reasons the codes of ``rtap.collect.api.Reason``.

With several collector processes (rtap.collect.workers) the metrics are the sum over them (prometheus-client's
multiprocess mode): the sink is healthy while every live process's is, and the queue is their queues' sum.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rtap.metrics.endpoint import multiprocess

# How often each of several processes writes its sink's gauges for the others to read (one process reads its
# own at each scrape).
GAUGE_REFRESH_S = 1.0
ACK_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class CollectorMetrics(Collector):
    """Counters, the ack-time histogram and the sink's gauges of one collector process."""

    def __init__(self) -> None:
        self.requests = Counter(
            "rtap_collect_requests",
            "HTTP requests answered, by route template and status code.",
            ["route", "code"],
            registry=None,
        )
        self.events_accepted = Counter(
            "rtap_collect_events_accepted",
            "Events acknowledged by Kafka and answered 200.",
            registry=None,
        )
        self.events_refused = Counter(
            "rtap_collect_events_refused",
            "Events of refused requests, by reason (a request whose events could not be counted counts one).",
            ["reason"],
            registry=None,
        )
        self.ack_seconds = Histogram(
            "rtap_collect_ack_seconds",
            "From a request's first record handed to the producer to Kafka's acknowledgement of its last.",
            buckets=ACK_BUCKETS_S,
            registry=None,
        )
        self.sink_healthy = Gauge(
            "rtap_collect_sink_healthy",
            "1 while the Kafka sink is healthy (GET /healthz answers 200).",
            registry=None,
            multiprocess_mode="livemin",
        )
        self.producers_replaced = Counter(
            "rtap_collect_producers_replaced",
            "Kafka producers replaced for knowing no broker any more (librdkafka 2.16: rtap.kafka_clients).",
            registry=None,
        )
        self.queued = Gauge(
            "rtap_collect_producer_queue_messages",
            "Records in the producer's queue or in flight, awaiting Kafka's acknowledgement (bounded).",
            registry=None,
            multiprocess_mode="livesum",
        )

    def watch_sink(self, healthy: Callable[[], bool], queued: Callable[[], int]) -> None:
        """Read the sink's health and queue at each scrape; in multiprocess mode, write them every
        :data:`GAUGE_REFRESH_S` from a daemon thread instead (a scrape reads the files, not this process)."""
        if not multiprocess():
            self.sink_healthy.set_function(lambda: float(healthy()))
            self.queued.set_function(lambda: float(queued()))
            return

        def refresh() -> None:
            while True:
                self.sink_healthy.set(float(healthy()))
                self.queued.set(float(queued()))
                time.sleep(GAUGE_REFRESH_S)

        threading.Thread(target=refresh, name="rtap-collect-gauges", daemon=True).start()

    def collect(self) -> Iterator[Metric]:
        for metric in (
            self.requests,
            self.events_accepted,
            self.events_refused,
            self.ack_seconds,
            self.sink_healthy,
            self.queued,
            self.producers_replaced,
        ):
            yield from metric.collect()


class CollectorRequestMetrics:
    """ASGI middleware counting each HTTP request of the collector by route template and status code."""

    def __init__(self, app: ASGIApp, metrics: CollectorMetrics) -> None:
        self._app = app
        self._metrics = metrics
        self._children: dict[tuple[str, int], Any] = {}  # labels() takes a lock and builds a key per call

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        status: MutableMapping[str, int] = {"code": 500}  # an exception before the response is a 500

        async def record_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self._app(scope, receive, record_status)
        finally:
            labels = (_route(scope), status["code"])
            child = self._children.get(labels)
            if child is None:
                child = self._children[labels] = self._metrics.requests.labels(labels[0], str(labels[1]))
            child.inc()


def _route(scope: MutableMapping[str, Any]) -> str:
    route = scope.get("route")  # set by Starlette's router once a route matched
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "other"
