"""The process's one Prometheus endpoint: ``GET /metrics`` in the text exposition format.

Each long-running command starts one (``rtap up``, ``rtap stream``, ``rtap dashboard``, ``rtap produce``) with the
collectors of what runs in it, next to the process collectors (``process_start_time_seconds`` tells Prometheus
about process restarts). It listens on ``RTAP_METRICS_HOST`` (loopback by default, like the dashboard) in a
daemon thread of prometheus-client's WSGI server, and stops with :meth:`MetricsEndpoint.stop`.

Beyond loopback it listens only with ``RTAP_METRICS_PASSWORD`` set (the settings refuse otherwise), and then
every scrape must carry it: HTTP basic auth, which Prometheus' ``basic_auth`` sends (:class:`ScrapeAuth`, also
the collector's ``/metrics``). With ``RTAP_METRICS_TLS_*`` files it speaks TLS, so that password never crosses
a network in clear.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hmac
import logging
import os
import socket
import ssl
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import GCCollector, PlatformCollector, ProcessCollector, make_wsgi_app
from prometheus_client.core import Metric
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry

from rtap.addresses import names_loopback
from rtap.errors import PortInUseError, ServiceError
from rtap.runtime.ports import server_tls_context
from rtap.settings import MetricsSettings, is_loopback

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger("rtap.metrics")

#: Connections served at once; more are closed at once (a scrape is one).
MAX_CONNECTIONS = 16
#: How long a scrape's connection may stay silent (a TLS handshake included) before its thread lets it go.
CONNECTION_TIMEOUT_S = 30.0

#: Set (to a folder) in the processes of a multi-process server (rtap.collect.workers) before they import
#: prometheus-client, which then keeps every value in a file there for any of them to sum up.
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess() -> bool:
    """Whether this process is one of several serving the same metrics (prometheus-client's multiprocess mode)."""
    return MULTIPROCESS_DIR in os.environ


class ScrapeAuth:
    """The one credential a scrape must present when ``RTAP_METRICS_PASSWORD`` is set: ``Authorization: Basic``
    with ``RTAP_METRICS_USERNAME`` and that password, compared in constant time."""

    CHALLENGE = 'Basic realm="rtap metrics", charset="UTF-8"'
    REFUSAL = "rtap's metrics need RTAP_METRICS_USERNAME and RTAP_METRICS_PASSWORD (basic auth)\n"

    def __init__(self, username: str, password: str) -> None:
        self._expected = b"Basic " + base64.b64encode(f"{username}:{password}".encode())

    @classmethod
    def from_settings(cls, settings: MetricsSettings) -> ScrapeAuth | None:
        if settings.password is None:
            return None
        return cls(settings.username, settings.password.get_secret_value())

    def allows(self, authorization: str | None) -> bool:
        return hmac.compare_digest((authorization or "").encode("latin-1", "replace"), self._expected)


def _guarded(app: WSGIApplication, auth: ScrapeAuth) -> WSGIApplication:
    def guarded(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if auth.allows(environ.get("HTTP_AUTHORIZATION")):
            return app(environ, start_response)
        start_response("401 Unauthorized", [("WWW-Authenticate", ScrapeAuth.CHALLENGE), ("Content-Type", "text/plain")])
        return [ScrapeAuth.REFUSAL.encode()]

    return guarded


def _loopback_names_only(app: WSGIApplication) -> WSGIApplication:
    """With no password, on loopback: only requests for this machine's own names (DNS rebinding, rtap.addresses)."""

    def checked(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if names_loopback(environ.get("HTTP_HOST")):
            return app(environ, start_response)
        start_response("421 Misdirected Request", [("Content-Type", "text/plain")])
        return [b"rtap's metrics answer only for this machine's loopback names\n"]

    return checked


class _QuietHandler(WSGIRequestHandler):
    """No access log line per scrape (one every 15 s per Prometheus); a silent connection is let go."""

    timeout = CONNECTION_TIMEOUT_S

    def log_message(self, format: str, *args: object) -> None:
        pass


class _BoundedServer(ThreadingWSGIServer):
    """One daemon thread per connection, at most :data:`MAX_CONNECTIONS` at once (Prometheus opens one or two):
    a peer that opens hundreds cannot fill the process with threads; the one beyond the bound is closed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class MetricsEndpoint:
    """A running endpoint: ``url`` to scrape, ``stop()`` to close it (also as a context manager)."""

    def __init__(self, server: WSGIServer, thread: threading.Thread, registry: CollectorRegistry, *, tls: bool) -> None:
        self._server = server
        self._thread = thread
        self.registry = registry
        host, port = server.server_address[:2]
        self.host: str = str(host)
        self.port: int = int(port)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://{self.host if ':' not in self.host else f'[{self.host}]'}:{self.port}/metrics"

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
    app = make_wsgi_app(registry)
    auth = ScrapeAuth.from_settings(settings)
    if auth is not None:
        app = _guarded(app, auth)
    elif is_loopback(settings.host):
        app = _loopback_names_only(app)
    tls = tls_context(settings)
    try:
        # The family of the address asked for (an IPv6 host needs an AF_INET6 socket), as http.server does.
        family, _, _, _, address = socket.getaddrinfo(
            settings.host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]

        class Server(_BoundedServer):
            address_family = family

        server = make_server(str(address[0]), port, app, Server, handler_class=_QuietHandler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(settings.host, port, "the metrics endpoint") from exc
        raise ServiceError(f"cannot listen on {settings.host}:{port} for the metrics endpoint: {exc}") from exc
    if tls is not None:
        # The handshake happens on the request's own thread (its first read), not in the accepting loop, where
        # a peer that connects and says nothing would hold up every other scrape.
        server.socket = tls.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    thread = threading.Thread(target=server.serve_forever, name="rtap-metrics", daemon=True)
    thread.start()
    return MetricsEndpoint(server, thread, registry, tls=tls is not None)


def tls_context(settings: MetricsSettings) -> ssl.SSLContext | None:
    """The endpoint's TLS, when configured; unusable files are one clear line (also rtap up's preflight)."""
    if settings.tls_certificate_file is None or settings.tls_key_file is None:
        return None
    return server_tls_context(settings.tls_certificate_file, settings.tls_key_file, "the metrics endpoint")


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
