"""Soak: realistic traffic against ``rtap up`` for 30 minutes (or any whole number of minutes), freshness per minute.

    .venv/bin/python -m bench.soak                                   (make soak: 80% of the search's rate, 30 min)
    .venv/bin/python -m bench.soak --rate 10000 --duration 2h --name soak-2h
    .venv/bin/python -m bench.soak --rate 2000 --duration 3m --hour report --out bench/results/tmp   (a check)

What is measured and the rule are in ``rtap_bench.soak``. Results: ``<out>/<name>.json`` (every minute and
RSS sample) and ``<name>.md`` (the command, the per-minute table, the verdicts); exit 0 only when it passed.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import orjson
from rtap_bench.cli import LEAD_IN_S
from rtap_bench.soak import HOUR_MARGIN_S, SEARCH_SHARE, SoakPlan, keep_logs, markdown, parse_duration, run_soak

from rtap.errors import RtapError
from rtap.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results"


def _rates(text: str) -> tuple[float, ...]:
    rates = tuple(float(r) for r in text.split(","))
    if not rates or any(r <= 0 for r in rates):
        raise argparse.ArgumentTypeError(f"comma-separated events/s > 0, got {text!r}")
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help=f"events/s (default: {SEARCH_SHARE:.0%} of the highest rate the run's own search held)",
    )
    parser.add_argument("--duration", default="30m", help="whole minutes, e.g. 30m, 2h, 180s (default 30m)")
    parser.add_argument(
        "--hour",
        choices=("cross", "report"),
        default="cross",
        help=f"cross: start so that an hour boundary falls at least {HOUR_MARGIN_S / 60:.0f} min (a sixth of a "
        "shorter run) inside the run, waiting if needed; report: start at once and say where one fell",
    )
    parser.add_argument(
        "--search-rates",
        type=_rates,
        default=(10_000.0, 50_000.0),
        help="the search's first steps (events/s, comma-separated), like rtap bench's fixed rates",
    )
    parser.add_argument("--search-steps", type=int, default=7, help="search steps after them")
    parser.add_argument("--step-seconds", type=float, default=20.0, help="seconds per search step")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds the job may take to commit a run")
    parser.add_argument(
        "--lead-in-seconds",
        type=float,
        default=LEAD_IN_S,
        help=f"unjudged traffic after the start-up, before the search or the run (default {LEAD_IN_S:.0f})",
    )
    parser.add_argument("--master", default=None, help="Spark master (default: rtap's, what rtap up runs)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where <name>.json and <name>.md go")
    parser.add_argument("--name", default="soak", help="file name of the results (default soak)")
    args = parser.parse_args(argv)
    command = "python -m bench.soak " + shlex.join(argv if argv is not None else sys.argv[1:])
    try:
        seconds = parse_duration(args.duration)
    except RtapError as exc:
        parser.error(str(exc))
    if args.rate is not None and args.rate <= 0:
        parser.error(f"--rate must be > 0 events/s, got {args.rate}")
    plan = SoakPlan(
        rate=args.rate,
        seconds=seconds,
        search_rates=args.search_rates,
        search_steps=args.search_steps,
        step_s=args.step_seconds,
        hour=args.hour,
        timeout_s=args.timeout,
        jars_dir=Settings().jars_dir,
        master=args.master,
        lead_in_s=args.lead_in_seconds,
    )
    load_before = os.getloadavg()[0]
    logs = args.out / f"{args.name}-failed-logs"
    try:
        with tempfile.TemporaryDirectory(prefix="rtap-soak-") as tmp:
            try:
                result = run_soak(plan, Path(tmp))
            except RtapError:
                keep_logs(Path(tmp), logs)
                raise
    except RtapError as exc:  # the stack or the sender failed: one line and the stack's logs, no result files
        print(f"error: {' '.join(str(exc).split())} (the stack's logs: {logs})", file=sys.stderr)
        return 1
    result.update(
        command=command.strip(),
        when=datetime.now(UTC).isoformat(timespec="seconds"),
        machine={
            "cpus": os.cpu_count() or 0,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_1m_before": load_before,
            "load_average_1m_after": os.getloadavg()[0],
        },
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    text = markdown(result)
    (args.out / f"{args.name}.md").write_text(text)
    print(text)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
