"""``rtap bench``: every throughput baseline and the full job, in one run, on a private local stack."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

SMOKE_EVENTS = 3_000
SMOKE_STEP_S = 4.0


def bench(
    events: Annotated[int, typer.Option(min=100, help="Records in the topic (and per produce measurement).")] = 100_000,
    repeats: Annotated[int, typer.Option(min=1, help="Repeats of each measurement (medians and spread).")] = 3,
    out: Annotated[Path, typer.Option(help="Directory for the JSON, markdown and PNG results.")] = Path(
        "bench/results"
    ),
    smoke: Annotated[bool, typer.Option(help=f"A tiny run for CI: {SMOKE_EVENTS:,} records, one repeat.")] = False,
    timeout: Annotated[float, typer.Option(min=10, help="Seconds each drain may take before the run fails.")] = 600.0,
    step_seconds: Annotated[
        float, typer.Option(min=2, help="Seconds of open-loop load per step of the sustainable-rate search.")
    ] = 30.0,
    steps: Annotated[int, typer.Option(min=1, help="Steps of the sustainable-rate search.")] = 3,
    freshness_rate: Annotated[
        float | None,
        typer.Option(
            min=1, help="Events/s of the per-event freshness phase (default: half the sustainable rate found)."
        ),
    ] = None,
    k_python: Annotated[
        Path | None,
        typer.Option(
            help="A Python whose chDB can create Kafka tables (e.g. chdb==3.7.2; `make bench` builds one). "
            "Without it K records the pinned chDB's error."
        ),
    ] = None,
) -> None:
    """Measure B1, P1, B2, B3, B4, P (drain, sustainable rate, freshness) and K; reconcile; write bench/results."""
    from rtap.bench.harness import BenchPlan, run_bench
    from rtap.bench.report import markdown, write
    from rtap.console import console as make_console
    from rtap.errors import PipelineError, ValidationFailedError
    from rtap.settings import Settings

    if smoke:
        events, repeats, step_seconds, steps = SMOKE_EVENTS, 1, SMOKE_STEP_S, 1
    plan = BenchPlan(
        events, repeats, Settings().jars_dir, timeout, smoke, step_seconds, steps, k_python, freshness_rate
    )
    command = "rtap " + shlex.join(sys.argv[1:])
    result = run_bench(plan, command)
    paths = write(result, out)
    console = make_console()
    console.print(markdown(result))
    console.print("wrote " + ", ".join(str(p) for p in paths))
    if not result["reconciliation"]["ok"]:
        raise ValidationFailedError("the job's tables differ from the produced truth (see the report)")
    live = result["P_sustained"]
    if "error" in live:
        raise PipelineError(f"the sustained phase failed: {live['error']}")
    if not live["reconciliation"]["ok"]:
        raise ValidationFailedError("the sustained phase's tables differ from the produced truth (see the report)")
