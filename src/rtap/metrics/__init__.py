"""Prometheus metrics of every rtap process, and the alert rules over them.

The process-wide recorders below are what the pipeline calls (three hooks in the stream job, two counters in
the producer, one middleware in the dashboard, the collector's counters and middleware); :func:`serve_metrics`
exposes the ones a command runs. Names follow Prometheus' conventions (``rtap_<stage>_<what>_<unit>``, ``_total``
on counters); docs/operations.md lists them with the alerts built on them (:mod:`rtap.metrics.rules`).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from prometheus_client import disable_created_metrics

from rtap.metrics.collector import CollectorMetrics, CollectorRequestMetrics
from rtap.metrics.dashboard import DashboardMetrics, RequestMetrics
from rtap.metrics.endpoint import MetricsEndpoint, process_registry, serve_metrics, serving
from rtap.metrics.producer import ProducerMetrics

if TYPE_CHECKING:
    from rtap.metrics.stream import KafkaEndOffsets, StreamMetrics

    STREAM: StreamMetrics

# No `<counter>_created` series: they double the series count and no rule or panel of rtap reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus-client 0.26

_LAZY = threading.Lock()
PRODUCER = ProducerMetrics()
DASHBOARD = DashboardMetrics()
COLLECTOR = CollectorMetrics()


def __getattr__(name: str) -> Any:
    """The stream's metrics on first use: they need numpy and pyarrow, which light commands (``rtap sql``,
    ``rtap metrics rules``) never load."""
    if name not in ("STREAM", "StreamMetrics", "KafkaEndOffsets"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from rtap.metrics import stream

    with _LAZY:  # one STREAM per process, whichever thread asks first
        globals().update(StreamMetrics=stream.StreamMetrics, KafkaEndOffsets=stream.KafkaEndOffsets)
        if "STREAM" not in globals():
            globals()["STREAM"] = stream.StreamMetrics()
    return globals()[name]


__all__ = [
    "COLLECTOR",
    "DASHBOARD",
    "PRODUCER",
    "STREAM",
    "CollectorMetrics",
    "CollectorRequestMetrics",
    "DashboardMetrics",
    "KafkaEndOffsets",
    "MetricsEndpoint",
    "ProducerMetrics",
    "RequestMetrics",
    "StreamMetrics",
    "process_registry",
    "serve_metrics",
    "serving",
]
