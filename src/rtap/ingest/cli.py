"""``rtap produce``: generate a seeded clickstream into Kafka and record its ground truth."""

from __future__ import annotations

import signal
import sys
import threading
from typing import TYPE_CHECKING, Annotated

import typer

from rtap.console import console as make_console
from rtap.errors import BrokerError
from rtap.options import finite
from rtap.settings import Settings

if TYPE_CHECKING:
    from rich.console import Console

    from rtap.ingest.producer import ProduceProgress, ProduceReport


def produce(
    rate: Annotated[float, typer.Option(callback=finite, help="Events per second; 0 = as fast as possible.")] = 1000.0,
    count: Annotated[int | None, typer.Option(help="Stop after this many events.")] = None,
    duration: Annotated[float | None, typer.Option(callback=finite, help="Stop after this many seconds.")] = None,
    seed: Annotated[int | None, typer.Option(help="Generator seed (default: RTAP_GEN_SEED).")] = None,
) -> None:
    """Produce generated clickstream events to Kafka (until --count, --duration, or Ctrl-C).

    Events follow an open-loop schedule: event i is due at start + i/rate and carries that time as its
    event_time. Exits non-zero if Kafka did not acknowledge every record.
    """
    from rtap import metrics
    from rtap.ingest.producer import validate_run

    validate_run(rate, count, duration)
    settings = Settings()
    with metrics.serving(settings.metrics, settings.metrics.producer_port, metrics.PRODUCER):
        _produce(settings, rate=rate, count=count, duration=duration, seed=seed)


def _produce(settings: Settings, *, rate: float, count: int | None, duration: float | None, seed: int | None) -> None:
    from rtap.ingest.producer import produce_run

    stop = threading.Event()
    # Ctrl-C / SIGTERM end the run cleanly: the current event is finished, everything is flushed and
    # the ground truth still matches what was sent.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    console = make_console()
    if sys.stdout.isatty():
        report = _with_progress(settings, console, rate=rate, count=count, duration=duration, seed=seed, stop=stop)
    else:
        report = produce_run(settings, rate=rate, count=count, duration_s=duration, seed=seed, stop=stop)
    console.print(
        f"run {report.run_id}: {report.produced:,} records ({report.scheduled:,} events) to {report.topic} "
        f"in {report.elapsed_s:.2f}s = {report.records_per_s:,.0f} records/s; "
        f"behind schedule: max {report.max_lag_s * 1000:.1f} ms, final {report.final_lag_s * 1000:.1f} ms"
    )
    console.print(f"ground truth: {report.truth_path}")
    if report.failed:
        raise BrokerError(
            f"{report.failed:,} of {report.produced:,} records were not delivered to {report.topic} "
            f"(first error: {report.first_error}); ground truth kept in {report.truth_path}, latest.json unchanged"
        )


def _with_progress(
    settings: Settings,
    console: Console,
    *,
    rate: float,
    count: int | None,
    duration: float | None,
    seed: int | None,
    stop: threading.Event,
) -> ProduceReport:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from rtap.ingest.producer import produce_run

    columns = (
        TextColumn("[bold]producing[/]"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        total = count if count is not None else duration
        task = progress.add_task("produce", total=total, status="")

        def show(snapshot: ProduceProgress) -> None:
            done = snapshot.scheduled if count is not None else snapshot.elapsed_s
            speed = snapshot.produced / snapshot.elapsed_s if snapshot.elapsed_s > 0 else 0.0
            status = (
                f"{snapshot.produced:,} records  {speed:,.0f}/s  in flight {snapshot.in_flight:,}  "
                f"failed {snapshot.failed:,}  lag {snapshot.lag_s * 1000:.0f} ms"
            )
            progress.update(task, completed=done, status=status)

        return produce_run(
            settings, rate=rate, count=count, duration_s=duration, seed=seed, stop=stop, on_progress=show
        )
