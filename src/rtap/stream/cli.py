"""Commands of the stream stage: ``rtap stream`` and ``rtap dlq reasons|show|replay``."""

from __future__ import annotations

import logging
import signal
from typing import TYPE_CHECKING, Annotated

import typer

from rtap.console import console as make_console
from rtap.settings import Settings

if TYPE_CHECKING:
    from rtap.stream.dead_letters import Filters

dlq_app = typer.Typer(help="Dead letters: inspect and replay records that broke the contract.", no_args_is_help=True)

# The filters `rtap dlq reasons` and `rtap dlq show` share (rtap.stream.dead_letters).
Since = Annotated[str | None, typer.Option("--since", help="How far back: 90s, 15m, 6h, 2d (default 1h; or --from).")]
From = Annotated[str | None, typer.Option("--from", help="Start, ISO 8601 (UTC unless it says otherwise).")]
To = Annotated[str | None, typer.Option("--to", help="End, ISO 8601 (default: now).")]
Topic = Annotated[str | None, typer.Option(help="Only dead letters read from this topic.")]
Reason = Annotated[str | None, typer.Option(help="Only reasons containing this text (any case).")]


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
    from rtap import metrics
    from rtap.ingest.topics import ensure_topics
    from rtap.stream.job import StreamJob
    from rtap.stream.kafka import LagProbe
    from rtap.warehouse import create_client, serve_channel
    from rtap.warehouse.migrate import apply_migrations

    settings = Settings()
    if master:
        settings.stream.master = master
    if accept_data_loss:
        settings.stream.accept_data_loss = True
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


def _filters(since: str | None, start: str | None, end: str | None, topic: str | None, reason: str | None) -> Filters:
    from datetime import UTC, datetime

    from rtap.stream.dead_letters import resolve_filters

    return resolve_filters(since=since, start=start, end=end, topic=topic, reason=reason, now=datetime.now(UTC))


@dlq_app.command("reasons")
def reasons(
    since: Since = None,
    start: From = None,
    end: To = None,
    topic: Topic = None,
    reason: Reason = None,
    limit: Annotated[int, typer.Option(help="At most this many reasons.")] = 50,
) -> None:
    """Why records were rejected: each reason with its count, share, first and last time seen."""
    from rtap.stream import dead_letters
    from rtap.warehouse import create_client

    filters = _filters(since, start, end, topic, reason)
    dead_letters.check_limit(limit)
    with create_client(Settings(), readonly=True) as client:
        total, found = dead_letters.reasons(client, filters, limit=limit)
    console = make_console()
    for line in dead_letters.reason_lines(total, found, filters):
        console.print(line)


@dlq_app.command("show")
def show(
    since: Since = None,
    start: From = None,
    end: To = None,
    topic: Topic = None,
    reason: Reason = None,
    limit: Annotated[int, typer.Option(help="At most this many dead letters, newest first.")] = 10,
    full: Annotated[bool, typer.Option("--full", help="Whole payloads (default: the first 300 characters).")] = False,
    json_lines: Annotated[
        bool, typer.Option("--json", help="One JSON object per dead letter (whole payloads), for jq and scripts.")
    ] = False,
) -> None:
    """The newest dead letters: where each came from, why it was rejected, and its payload."""
    import orjson

    from rtap.stream import dead_letters
    from rtap.warehouse import create_client

    filters = _filters(since, start, end, topic, reason)
    dead_letters.check_limit(limit)
    with create_client(Settings(), readonly=True) as client:
        letters = dead_letters.recent(client, filters, limit=limit, full=full or json_lines)
    if json_lines:
        for letter in letters:
            typer.echo(orjson.dumps(dead_letters.letter_json(letter)).decode())
        return
    console = make_console()
    if not letters:
        console.print(f"no dead letters {filters.describe()}")
    for letter in letters:
        for line in dead_letters.letter_lines(letter):
            console.print(line)


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
