"""Run the dashboard with uvicorn in a background thread, so ``rtap up`` can serve it next to the pipeline.

The listening socket is bound here, before uvicorn starts, so a taken port is a one-line
:class:`~rtap.errors.PortInUseError` at once instead of a log line from a thread nobody watches.
"""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from rtap.addresses import names_loopback
from rtap.dashboard.api import create_app
from rtap.dashboard.auth import check_exposure
from rtap.dashboard.definition import Definition
from rtap.errors import ServiceError
from rtap.runtime.http import guarded_protocol
from rtap.runtime.ports import http_url, listening_socket, server_tls_context
from rtap.settings import DashboardSettings, Settings, is_loopback
from rtap.warehouse import WarehouseClient

_START_TIMEOUT_S = 15.0
MAX_CONNECTIONS = 512
MAX_CONNECTIONS_PER_CLIENT = 64
HEADER_TIMEOUT_S = 10.0
MAX_HEADER_BYTES = 65_536


def check_tls_files(dashboard: DashboardSettings) -> None:
    """One clear line, before anything listens, when the dashboard's TLS certificate and key cannot be used."""
    if dashboard.tls_certificate_file is not None and dashboard.tls_key_file is not None:
        server_tls_context(dashboard.tls_certificate_file, dashboard.tls_key_file, "the dashboard")


class LoopbackNamesOnly:
    """ASGI middleware: a 421 for any request whose ``Host`` is not a loopback name (DNS rebinding)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not names_loopback(Headers(scope=scope).get("host")):
            refused = PlainTextResponse("This dashboard answers only for this machine's loopback names.\n", 421)
            await refused(scope, receive, send)
            return
        await self._app(scope, receive, send)


class DashboardServer:
    """A running dashboard: ``url`` to open, ``stop()`` to shut it down (also as a context manager)."""

    def __init__(self, server: uvicorn.Server, thread: threading.Thread, sock: socket.socket, *, tls: bool) -> None:
        self._server = server
        self._thread = thread
        self._socket = sock
        host, port = sock.getsockname()[:2]
        self.host: str = host
        self.port: int = port
        self.url = http_url(host, port, "https" if tls else "http")

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        self._socket.close()

    def __enter__(self) -> DashboardServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def serve_dashboard(
    settings: Settings, client: WarehouseClient, *, port: int | None = None, definition: Definition | None = None
) -> DashboardServer:
    """Start the dashboard on settings.dashboard.host:port (``port`` overrides, 0 = any free port).

    Beyond loopback only with a password configured (:func:`rtap.dashboard.auth.check_exposure`), checked
    before the socket is bound.
    """
    check_exposure(settings.dashboard)
    check_tls_files(settings.dashboard)
    host = settings.dashboard.host
    app: ASGIApp = create_app(settings, client, definition)
    if is_loopback(host):  # on loopback: only requests for this machine's own names (rtap.addresses)
        app = LoopbackNamesOnly(app)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        # rtap believes X-Forwarded-For and -Proto from RTAP_DASHBOARD_TRUSTED_PROXIES only (rtap.addresses);
        # uvicorn's own handling would believe any peer on 127.0.0.1.
        proxy_headers=False,
        ssl_certfile=settings.dashboard.tls_certificate_file,
        ssl_keyfile=settings.dashboard.tls_key_file,
        # Reachable by strangers before any login once published: the connections it holds are bounded, and so
        # are the time and bytes a request's headers may take (rtap.runtime.http; the login body's own bound is
        # rtap.dashboard.auth's). A page load opens a few; viewers beyond the admission's share wait anyway.
        limit_concurrency=MAX_CONNECTIONS,
        http=guarded_protocol(
            header_timeout_s=HEADER_TIMEOUT_S,
            max_header_bytes=MAX_HEADER_BYTES,
            per_client=MAX_CONNECTIONS_PER_CLIENT,
            trusted_proxies=settings.dashboard.trusted_proxies,
        ),
    )
    sock = listening_socket(host, settings.dashboard.port if port is None else port, "the dashboard")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="rtap-dashboard", daemon=True)
    thread.start()
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise ServiceError(f"the dashboard did not start on {host}:{sock.getsockname()[1]}")
        time.sleep(0.02)
    return DashboardServer(server, thread, sock, tls=settings.dashboard.tls)
