"""What a standalone benchmark records beside its figures, and where it writes them (``bench/results``)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from rtap.errors import PipelineError

RESULTS = Path(__file__).resolve().parents[1] / "results"


def run_facts(module: str, argv: list[str] | None) -> dict[str, Any]:
    """The command that ran (``python -m bench.<module> ...``), when it finished, the machine, and its load
    average at the end: others' work on a shared machine."""
    return {
        "command": f"python -m bench.{module} " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version()},
        "load_average_at_end": [round(x, 1) for x in os.getloadavg()],
    }


def write_results(name: str, result: dict[str, Any], markdown: list[str]) -> None:
    """``result`` as ``<name>.json`` and its report as ``<name>.md``."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    (RESULTS / f"{name}.md").write_text("\n".join(markdown) + "\n")


def step_options(parser: argparse.ArgumentParser, rates: str) -> None:
    """The options of a script that offers fixed rates to a running stack, one step each (``bench/outside*.py``)."""
    parser.add_argument("--rates", default=rates, help="events/s per step, comma-separated")
    parser.add_argument("--step-seconds", type=float, default=20.0)
    parser.add_argument("--settle-seconds", type=float, default=15.0, help="wait after a step before reading")
    parser.add_argument("--out", help="also write the JSON here")


def report_steps(steps: list[dict[str, Any]], out: str | None) -> None:
    """The steps of such a script, with when and how it ran, as JSON on stdout and in ``out`` if given."""
    report = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "command": " ".join(sys.argv), "steps": steps}
    print(json.dumps(report, indent=2))
    if out:
        Path(out).write_text(json.dumps(report, indent=2))


def worker_result(args: list[str], what: str, timeout_s: float) -> dict[str, Any]:
    """Run a worker process that prints its result as one JSON line, last (K's chDB worker, the Java producer);
    that result, or a :class:`PipelineError` naming ``what`` and the end of its stderr."""
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PipelineError(f"{what} did not run: {exc}") from exc
    if done.returncode != 0:
        raise PipelineError(f"{what} failed: {' '.join(done.stderr.split()[-40:])}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
