"""The stream job's contract validation against the cost of parsing, per record, in one run.

    .venv/bin/python -m bench.bench_classify [--records 100000] [--repeats 5] [--baseline-module PATH]

Input: N records from rtap's generator (its default dirt: ~0.5% malformed, duplicates, late), and the same
records with one in four broken in a known way (``mixed``), built before any clock starts. Measured in the
same run, alternating, CPU time of the process (steadier than wall time on a shared machine):

* ``orjson.loads``: parsing alone, the floor any validation pays;
* ``RecordValidator`` (``rtap.contract.validator``) with its fast path, as the job runs it, and with every
  record through the exact rules (what the fast path saves);
* with ``--baseline-module``, a ``spark.py`` of an older rtap whose ``validate_records`` validated in the
  JVM (e.g. ``git show a2c363e:src/rtap/contract/spark.py > /tmp/spark_before.py``), on the same records in a
  local[2] session, CPU of the Spark JVM.

The first repeat (warm-up) is left out of the medians. Results: bench/results/classify.json and .md.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from rtap_bench.procfs import tree_cpu_s
from rtap_bench.produce import pre_encoded

from rtap.contract.validator import RecordValidator
from rtap.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results"
LIMITS: dict[str, Any] = {"max_record_bytes": 65536, "max_future_skew_s": 3600.0}
# One broken record in four for the mixed input, cycling through kinds that fail at different rules.
BREAKAGES: list[Callable[[dict[str, Any]], dict[str, Any] | bytes]] = [
    lambda e: {**e, "event_id": "not-a-uuid"},
    lambda e: {**e, "price": "12.5"},
    lambda e: {k: v for k, v in e.items() if k != "user_id"},
    lambda e: {**e, "event_time": "2026-02-30T10:00:00Z"},
    lambda e: {**e, "event_type": "purchase", "order_id": None},
    lambda e: b"{broken",
]


def _mixed(payloads: list[bytes]) -> list[bytes]:
    out = []
    for i, payload in enumerate(payloads):
        if i % 4 == 3:
            try:
                broken = BREAKAGES[(i // 4) % len(BREAKAGES)](orjson.loads(payload))
            except orjson.JSONDecodeError:
                broken = payload  # already malformed by the generator
            payload = broken if isinstance(broken, bytes) else orjson.dumps(broken)
        out.append(payload)
    return out


def _spark_baseline(path: str, inputs: dict[str, list[bytes]], now_ms: int) -> dict[str, Callable[[], Any]]:
    """The old JVM validation as cases of this run, on the same records in a local session."""
    spec = importlib.util.spec_from_file_location("bench_baseline_spark", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("rtap-bench-classify")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "2g")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    moment = datetime.fromtimestamp(now_ms / 1000, UTC)
    cases: dict[str, Callable[[], Any]] = {}
    for name, payloads in inputs.items():
        frame = spark.createDataFrame(
            [(b"k", p, "t", i % 6, i // 6, moment) for i, p in enumerate(payloads)],
            "key binary, value binary, topic string, partition int, offset long, timestamp timestamp",
        ).cache()
        frame.count()

        def run(frame: Any = frame) -> None:
            checked = module.validate_records(frame, value="value", record_timestamp="timestamp", **LIMITS)
            checked.write.format("noop").mode("overwrite").save()

        cases[f"baseline: Spark SQL validate_records ({name})"] = run
    return cases


def _parse_all(payloads: list[bytes]) -> list[Any]:
    return [_loads(value) for value in payloads]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement after one warm-up")
    parser.add_argument("--baseline-module", help="an older spark.py whose validate_records is measured alongside")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
    generated = [value for _, value in pre_encoded(Settings(), args.records)]
    inputs = {"generated": generated, "mixed": _mixed(generated)}
    now_ms = time.time_ns() // 1_000_000 + 60_000
    times = np.full(args.records, now_ms, dtype=np.int64)
    fast = RecordValidator(**LIMITS)
    exact = RecordValidator(**LIMITS, fast_path=False)
    cases: dict[str, Callable[[], Any]] = {}
    for name, payloads in inputs.items():
        cases[f"orjson.loads, the parse floor ({name})"] = functools.partial(_parse_all, payloads)
        cases[f"RecordValidator, as the job runs it ({name})"] = functools.partial(fast.validate, payloads, times)
        cases[f"RecordValidator, exact rules only ({name})"] = functools.partial(exact.validate, payloads, times)
    if args.baseline_module:
        cases.update(_spark_baseline(args.baseline_module, inputs, now_ms))

    cpu: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats + 1):  # alternate, so a burst of load elsewhere hits every case alike
        for name, run in cases.items():
            before = tree_cpu_s(os.getpid())  # this process and the Spark JVM of the baseline
            run()
            cpu[name].append(tree_cpu_s(os.getpid()) - before)
    us = {name: statistics.median(values[1:]) / args.records * 1e6 for name, values in cpu.items()}
    invalid = {name: fast.validate(p, times).errors.null_count for name, p in inputs.items()}

    command = "python -m bench.bench_classify " + shlex.join(argv if argv is not None else sys.argv[1:])
    result = {
        "command": command.strip(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_before": round(load_before, 1),
        "load_average_after": round(os.getloadavg()[0], 1),
        "records": args.records,
        "valid_records": invalid,
        "repeats": args.repeats,
        "cpu_us_per_record": us,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "classify.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    lines = [
        "# Contract validation, per record",
        "",
        f"Command: `{result['command']}` ({result['when']}, {result['cpus']} CPUs, Python {result['python']},"
        f" 1-min load average {result['load_average_before']} before, {result['load_average_after']} after)",
        "",
        f"{args.records:,} records from rtap's generator (valid: {invalid['generated']:,}), and the same with one in"
        f" four broken (valid: {invalid['mixed']:,}); {args.repeats} timed repeats after one warm-up, alternating."
        " CPU time, median.",
        "",
        "| measurement | CPU µs/record | / orjson.loads |",
        "|---|---:|---:|",
    ]
    for name, value in us.items():
        floor = us[f"orjson.loads, the parse floor ({'mixed' if 'mixed' in name else 'generated'})"]
        lines.append(f"| {name} | {value:.2f} | {value / floor:.1f}x |")
    (RESULTS / "classify.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _loads(value: bytes) -> object:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return None


if __name__ == "__main__":
    main()
