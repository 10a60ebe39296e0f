"""Commands of the stream stage: ``rtap stream`` and ``rtap dlq replay``."""

from __future__ import annotations

import logging
import signal
from typing import Annotated

import typer

from rtap.console import console as make_console
from rtap.settings import Settings

dlq_app = typer.Typer(help="Dead letters: inspect and replay records that broke the contract.", no_args_is_help=True)


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
) -> None:
    """Run the Spark Structured Streaming job until Ctrl-C / SIGTERM."""
    from rtap.ingest.topics import ensure_topics
    from rtap.stream.job import StreamJob
    from rtap.warehouse import create_client, serve_channel
    from rtap.warehouse.migrate import apply_migrations

    settings = Settings()
    if master:
        settings.stream.master = master
    if accept_data_loss:
        settings.stream.accept_data_loss = True
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ensure_topics(settings.kafka)
    with create_client(settings) as client:
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


@dlq_app.command("replay")
def replay(
    dry_run: Annotated[bool, typer.Option(help="Only report what would be replayed.")] = False,
) -> None:
    """Re-validate dead letters against the current contract and re-publish those that now pass."""
    from rtap.stream.replay import replay_dead_letters

    settings = Settings()
    report = replay_dead_letters(settings.kafka, dry_run=dry_run)
    console = make_console()
    verb = "would replay" if dry_run else "replayed"
    console.print(f"read {report.read} dead letters, {verb} {report.replayed}")
    for reason, count in report.still_invalid.most_common(10):
        console.print(f"  still invalid: {count:>7}  {reason}")
