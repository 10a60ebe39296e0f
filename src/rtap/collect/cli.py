"""The collector's command: ``rtap collect``."""

from __future__ import annotations

from typing import Annotated

import typer

from rtap.console import console as make_console
from rtap.console import escape
from rtap.settings import Settings


def collect(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default: settings, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="Port (default: settings, 8070).")] = None,
) -> None:
    """Serve the HTTP collector for browsers (batch, sendBeacon and pixel endpoints), the tracker and the demo
    shop, writing to Kafka, until Ctrl-C."""
    from rtap.collect.server import check_exposure, url
    from rtap.collect.workers import serve
    from rtap.ingest.topics import ensure_topics
    from rtap.runtime.ports import listening_socket

    settings = Settings()
    overrides = {name: value for name, value in (("host", host), ("port", port)) if value is not None}
    settings.collect = settings.collect.model_copy(update=overrides)
    check_exposure(settings.collect, settings.metrics)
    ensure_topics(settings.kafka)
    sock = listening_socket(settings.collect.host, settings.collect.port, "the collector")
    where = url(sock)
    make_console(markup=True).print(
        f"collector: [bold]{escape(where)}[/] writing to {escape(settings.kafka.browser_topic)}  "
        f"(demo shop: {escape(where)}/shop/, tracker: {escape(where)}/tracker.js, health: {escape(where)}/healthz; "
        "Ctrl-C to stop)"
    )
    serve(settings, sock)
