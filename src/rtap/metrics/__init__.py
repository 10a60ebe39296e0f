"""Prometheus metrics of every rtap process, and the alert rules over them.

The process-wide recorders below are what the pipeline calls (three hooks in the stream job, two counters in
the producer, one middleware in the dashboard); :func:`serve_metrics` exposes the ones a command runs. Names
follow Prometheus' conventions (``rtap_<stage>_<what>_<unit>``, ``_total`` on counters); docs/operations.md
lists them with the alerts built on them (:mod:`rtap.metrics.rules`).
"""

from __future__ import annotations

from prometheus_client import disable_created_metrics

from rtap.metrics.dashboard import DashboardMetrics, RequestMetrics
from rtap.metrics.endpoint import MetricsEndpoint, serve_metrics, serving
from rtap.metrics.producer import ProducerMetrics
from rtap.metrics.stream import KafkaEndOffsets, StreamMetrics

# No `<counter>_created` series: they double the series count and no rule or panel of rtap reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus-client 0.26

STREAM = StreamMetrics()
PRODUCER = ProducerMetrics()
DASHBOARD = DashboardMetrics()

__all__ = [
    "DASHBOARD",
    "PRODUCER",
    "STREAM",
    "DashboardMetrics",
    "KafkaEndOffsets",
    "MetricsEndpoint",
    "ProducerMetrics",
    "RequestMetrics",
    "StreamMetrics",
    "serve_metrics",
    "serving",
]
