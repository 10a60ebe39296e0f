"""The process's one Prometheus endpoint: ``GET /metrics`` in the text exposition format.

Each long-running command starts one (``rtap up``, ``rtap stream``, ``rtap dashboard``, ``rtap produce``) with the
collectors of what runs in it, next to the process collectors (``process_start_time_seconds`` tells Prometheus
about process restarts). It listens on ``RTAP_METRICS_HOST`` (loopback by default, like the dashboard) in a
daemon thread of prometheus-client's own server, and stops with :meth:`MetricsEndpoint.stop`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import GCCollector, PlatformCollector, ProcessCollector, start_http_server
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry

from rtap.errors import PortInUseError, ServiceError
from rtap.settings import MetricsSettings

log = logging.getLogger("rtap.metrics")

#: Set (to a folder) in the processes of a multi-process server (rtap.collect.workers) before they import
#: prometheus-client, which then keeps every value in a file there for any of them to sum up.
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess() -> bool:
    """Whether this process is one of several serving the same metrics (prometheus-client's multiprocess mode)."""
    return MULTIPROCESS_DIR in os.environ


class MetricsEndpoint:
    """A running endpoint: ``url`` to scrape, ``stop()`` to close it (also as a context manager)."""

    def __init__(self, server: WSGIServer, thread: threading.Thread, registry: CollectorRegistry) -> None:
        self._server = server
        self._thread = thread
        self.registry = registry
        host, port = server.server_address[:2]
        self.host: str = str(host)
        self.port: int = int(port)
        self.url = f"http://{self.host if ':' not in self.host else f'[{self.host}]'}:{self.port}/metrics"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsEndpoint:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def process_registry(*collectors: Collector) -> CollectorRegistry:
    """A registry of ``collectors`` and the process's own metrics: what one process's endpoint serves (here, or on
    the collector's own port: rtap.collect.routes).

    In multiprocess mode, the sum over every process's files of ``collectors``' metrics instead (read from the
    objects as well, they would count twice; the files also hold every metric rtap.metrics creates at import);
    one process's own metrics (``process_*``) would be whichever process answered the scrape, so none are served."""
    registry = CollectorRegistry()
    if multiprocess():
        names = {metric.name for collector in collectors for metric in collector.collect()}
        registry.register(_Only(MultiProcessCollector(None), names))  # type: ignore[no-untyped-call]
        return registry
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    for collector in collectors:
        registry.register(collector)
    return registry


class _Only(Collector):
    """The metrics of ``source`` named in ``names``."""

    def __init__(self, source: Collector, names: set[str]) -> None:
        self._source = source
        self._names = names

    def collect(self) -> Iterator[Metric]:
        return (metric for metric in self._source.collect() if metric.name in self._names)


def serve_metrics(settings: MetricsSettings, port: int, *collectors: Collector) -> MetricsEndpoint | None:
    """Serve ``collectors`` (and the process's own metrics) on ``settings.host:port``; None when disabled.

    ``port`` is the role's port from ``settings`` (0 = any free port); a taken port is a
    :class:`~rtap.errors.PortInUseError` at once, before the command starts anything else.
    """
    if not settings.enabled:
        return None
    registry = process_registry(*collectors)
    try:
        server, thread = start_http_server(port, addr=settings.host, registry=registry)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(settings.host, port, "the metrics endpoint") from exc
        raise ServiceError(f"cannot listen on {settings.host}:{port} for the metrics endpoint: {exc}") from exc
    return MetricsEndpoint(server, thread, registry)


@contextlib.contextmanager
def serving(settings: MetricsSettings, port: int, *collectors: Collector) -> Iterator[MetricsEndpoint | None]:
    """:func:`serve_metrics` for the length of a ``with`` block (a command's lifetime)."""
    endpoint = serve_metrics(settings, port, *collectors)
    if endpoint is not None:
        log.info("metrics on %s", endpoint.url)
    try:
        yield endpoint
    finally:
        if endpoint is not None:
            endpoint.stop()
