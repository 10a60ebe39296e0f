"""Commands of the stream stage: ``rtap stream``."""

from __future__ import annotations

import logging
import signal
from typing import Annotated

import typer

from rtap.errors import ConfigError
from rtap.settings import Settings


def stream(
    master: Annotated[
        str | None, typer.Option(help="Spark master URL, e.g. local[2] or spark://host:7077 (default: settings).")
    ] = None,
    accept_data_loss: Annotated[
        bool,
        typer.Option(
            "--accept-data-loss",
            help="Skip records Kafka deleted before the job read them, recording them in data_gaps "
            "(default: stop with the partitions and counts; RTAP_STREAM_ACCEPT_DATA_LOSS).",
        ),
    ] = False,
    ui_token: Annotated[
        bool,
        typer.Option(
            "--ui-token",
            help="Print the bearer token the Spark UI asks for when RTAP_STREAM_UI_SECRET is set, and exit.",
        ),
    ] = False,
) -> None:
    """Run the Spark Structured Streaming job until Ctrl-C / SIGTERM.

    The Spark UI listens beyond loopback only with RTAP_STREAM_UI_SECRET set (docs/security.md).
    """
    from rtap import metrics
    from rtap.ingest.topics import ensure_topics
    from rtap.stream import ui
    from rtap.stream.job import StreamJob
    from rtap.stream.kafka import LagProbe
    from rtap.warehouse import create_client, serve_channel
    from rtap.warehouse.migrate import apply_migrations

    settings = Settings()
    if ui_token:
        if settings.stream.ui_secret is None:
            raise ConfigError("RTAP_STREAM_UI_SECRET is not set: the Spark UI asks for no token")
        typer.echo(ui.token(settings.stream.ui_secret))
        return
    if master:
        settings.stream.master = master
    if accept_data_loss:
        settings.stream.accept_data_loss = True
    ui.check_exposure(settings.stream)  # before anything starts: a refusal is one line
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ensure_topics(settings.kafka)
    topic_ends = metrics.KafkaEndOffsets(LagProbe(settings.kafka).latest_offsets)
    with (
        metrics.serving(settings.metrics, settings.metrics.port, metrics.STREAM, topic_ends),
        create_client(settings) as client,
    ):
        apply_migrations(client)
        channel = serve_channel(client, settings) if settings.warehouse.backend == "chdb" else None
        job = StreamJob(settings, client)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: job.stop())
        try:
            job.run()
        finally:
            if channel is not None:
                channel.close()
