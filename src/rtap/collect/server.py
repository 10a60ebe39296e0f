"""Serve the collector with uvicorn (uvloop and httptools when installed) on a socket bound beforehand.

The collector is the one rtap server meant for the public, and what makes that safe is write keys with their
origins: bound beyond loopback with only the built-in demo key, it refuses to start.
"""

from __future__ import annotations

import logging
import math
import socket

import uvicorn

from rtap import metrics
from rtap.collect.routes import create_app
from rtap.collect.sinks import KafkaSink
from rtap.errors import ConfigError
from rtap.metrics.endpoint import ScrapeAuth
from rtap.runtime.http import guarded_protocol
from rtap.runtime.ports import http_url
from rtap.settings import CollectorSettings, MetricsSettings, Settings, is_loopback

log = logging.getLogger("rtap.collect")


def check_exposure(collect: CollectorSettings, metrics: MetricsSettings) -> None:
    """Refuse, in one line, to listen beyond loopback with only the demo key (anyone could use it); say so when
    the collector's ``/metrics`` will not be served (:func:`metrics_access`)."""
    if collect.demo_only and not is_loopback(collect.host):
        raise ConfigError(
            f"the collector would listen on {collect.host} with only the built-in demo write key: set "
            "RTAP_COLLECT_WRITE_KEYS to your sites' keys and origins (docs/collector.md), or listen on 127.0.0.1"
        )
    if not metrics_access(collect, metrics)[0]:
        log.warning(
            "the collector listens on %s: its /metrics is served there only with RTAP_METRICS_PASSWORD on a "
            "network that stays on this host (RTAP_METRICS_PRIVATE_NETWORK=true), so it is not served",
            collect.host,
        )


def metrics_access(collect: CollectorSettings, metrics: MetricsSettings) -> tuple[bool, ScrapeAuth | None]:
    """Whether the collector serves ``/metrics``, and the credential it asks for. The collector is the public
    door, its counters are not: beyond loopback they are served only behind ``RTAP_METRICS_PASSWORD``, and only
    where that password may travel: the collector speaks no TLS of its own, so on a network that stays on this
    host (``RTAP_METRICS_PRIVATE_NETWORK``: compose's, where Prometheus scrapes it)."""
    scrape = ScrapeAuth.from_settings(metrics)
    return is_loopback(collect.host) or (scrape is not None and metrics.private_network), scrape


def max_header_bytes(collect: CollectorSettings) -> int:
    """The longest request line and headers the collector reads: the pixel's URL carries a whole event,
    percent-encoded (up to 3 bytes a byte), beside ordinary headers."""
    return 16_384 + 3 * collect.max_event_bytes


def url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return http_url(host, port)


def serve_process(settings: Settings, sock: socket.socket) -> None:
    """Serve in this process (rtap.collect.workers.serve runs one or several) until SIGINT or SIGTERM (in the
    main thread), then finish the requests in flight and flush the producer: whatever was answered 200 is in
    Kafka, whatever was not was answered 503."""
    sink = KafkaSink(settings.kafka, settings.collect, metrics.COLLECTOR)
    serve_metrics, scrape = metrics_access(settings.collect, settings.metrics)
    app = create_app(settings.collect, sink, port=sock.getsockname()[1], scrape=scrape, serve_metrics=serve_metrics)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        proxy_headers=False,  # rtap.collect.records reads X-Forwarded-For from trusted proxies only
        server_header=False,
        limit_concurrency=settings.collect.max_connections,
        http=guarded_protocol(
            header_timeout_s=settings.collect.header_timeout_s,
            max_header_bytes=max_header_bytes(settings.collect),
            per_client=settings.collect.max_connections_per_client,
            trusted_proxies=settings.collect.trusted_proxies,
        ),
        timeout_graceful_shutdown=math.ceil(settings.collect.ack_timeout_s) + 2,
    )
    uvicorn.Server(config).run(sockets=[sock])
