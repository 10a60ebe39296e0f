"""``rtap bench``: every throughput baseline and the full job, in one run, on a private local stack."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from rtap.options import finite

SMOKE_EVENTS = 3_000
SMOKE_BATCH_RECORDS = 1_000
SMOKE_STEP_S = 4.0
SMOKE_RATES = (500.0,)
SMOKE_STEPS = 1
SMOKE_LEAD_IN_S = 2.0
LEAD_IN_S = 30.0  # at rtap_bench.sustain.LEAD_IN_RATE, which says why
# A drain needs a first batch (start-up) and at least two more to be timed in steady state.
MIN_DRAIN_BATCHES = 3


def _rates(text: str) -> tuple[float, ...]:
    try:
        rates = tuple(float(r) for r in text.split(","))
    except ValueError as exc:
        raise typer.BadParameter(f"comma-separated events/s, got {text!r}") from exc
    if not rates or any(r <= 0 for r in rates):
        raise typer.BadParameter(f"every rate must be > 0 events/s, got {text!r}")
    return rates


def bench(
    events: Annotated[int, typer.Option(min=100, help="Records in the topic (and per produce measurement).")] = 500_000,
    batch_records: Annotated[
        int, typer.Option(min=10, help="Records per micro-batch of the B3 and P drains (the same for both).")
    ] = 100_000,
    repeats: Annotated[int, typer.Option(min=1, help="Repeats of each measurement (medians and spread).")] = 3,
    out: Annotated[Path, typer.Option(help="Directory for the JSON, markdown and PNG results.")] = Path(
        "bench/results"
    ),
    smoke: Annotated[
        bool, typer.Option(help=f"A tiny run for CI: {SMOKE_EVENTS:,} records, one repeat, two short live steps.")
    ] = False,
    timeout: Annotated[
        float, typer.Option(min=10, callback=finite, help="Seconds each drain may take before the run fails.")
    ] = 600.0,
    step_seconds: Annotated[
        float,
        typer.Option(min=2, max=60, callback=finite, help="Seconds of open-loop load per step of the live phase."),
    ] = 20.0,
    lead_in_seconds: Annotated[
        float,
        typer.Option(
            min=0,
            callback=finite,
            help="Seconds of unjudged traffic before the live phases' first step (the JVMs' compilers).",
        ),
    ] = LEAD_IN_S,
    rates: Annotated[
        str, typer.Option(help="Fixed rates (events/s, comma-separated) whose per-event freshness is reported.")
    ] = "1000,10000,50000",
    steps: Annotated[
        int, typer.Option(min=0, help="Search steps after the fixed rates: up x1.5 until one fails, then bisect.")
    ] = 7,
    k_python: Annotated[
        Path | None,
        typer.Option(
            help="A Python whose chDB can create Kafka tables (e.g. chdb==3.7.2; `make bench` builds one). "
            "Without it K records the pinned chDB's error."
        ),
    ] = None,
) -> None:
    """Measure B1, P1, B2, B3, B4, P (drain, per-event freshness, sustainable rate) and K; reconcile; write results."""
    from rtap.console import console as make_console
    from rtap.errors import PipelineError, ValidationFailedError
    from rtap.settings import Settings
    from rtap_bench.harness import BenchPlan, run_bench
    from rtap_bench.report import markdown, write

    fixed = _rates(rates)
    if smoke:
        events, batch_records, repeats = SMOKE_EVENTS, SMOKE_BATCH_RECORDS, 1
        step_seconds, fixed, steps, lead_in_seconds = SMOKE_STEP_S, SMOKE_RATES, SMOKE_STEPS, SMOKE_LEAD_IN_S
    if events < MIN_DRAIN_BATCHES * batch_records:
        raise typer.BadParameter(
            f"--events {events:,} is fewer than {MIN_DRAIN_BATCHES} batches of --batch-records {batch_records:,}: "
            "no steady state to time"
        )
    plan = BenchPlan(
        events=events,
        repeats=repeats,
        jars_dir=Settings().jars_dir,
        drain_timeout_s=timeout,
        smoke=smoke,
        step_s=step_seconds,
        lead_in_s=lead_in_seconds,
        rates=fixed,
        max_steps=steps,
        batch_records=batch_records,
        k_python=k_python,
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
        raise ValidationFailedError("the sustained phase's tables differ from what was sent (see the report)")
