"""Spark-side contract validation (``validate_records``) against plain JSON parsing, on one local session.

    .venv/bin/python -m bench.bench_classify [--records 100000] [--repeats 5] [--baseline-module PATH]

Input: N generator-like records (valid, or a mix with one invalid kind in four), built before timing and
cached in Spark. Each measurement runs ``df.write.format("noop")`` over a projection, so Spark evaluates
every output column and writes nothing. Measured in the same run, alternating:

* ``try_parse_json`` and ``from_json`` (typed schema): the floor any validation pays (parsing);
* ``validate_records`` on valid and on mixed data;
* plan building: the Python-side cost of constructing the DataFrame, paid once per micro-batch.

Each is repeated; the first repeat (JIT and code generation warm-up) is reported apart and left out of the
medians. Wall time depends on what else runs on the machine, so the CPU time the Spark JVM used (from
/proc) is reported too; ratios are of medians. ``--baseline-module`` adds the ``validate_records`` of
another file (e.g. an older spark.py) to the same run. Results go to bench/results/classify.json and .md.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shlex
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from rtap.contract.spark import validate_records

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results"
KAFKA_SCHEMA = "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"
TYPED_SCHEMA = (
    "event_id string, event_type string, event_time string, user_id string, session_id string, page_url string,"
    " referrer string, ip_address string, user_agent string, device string, country string, product_id string,"
    " category string, price decimal(18,6), quantity int, order_id string, schema_version int"
)
LIMITS: dict[str, Any] = {"max_record_bytes": 65536, "max_future_skew_s": 3600.0}
RECORD_TIME = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
# One broken record in four for the mixed input, cycling through kinds that fail at different rules.
BREAKAGES: list[Callable[[dict[str, Any]], dict[str, Any] | bytes]] = [
    lambda e: {**e, "event_id": "not-a-uuid"},
    lambda e: {**e, "price": "12.5"},
    lambda e: {k: v for k, v in e.items() if k != "user_id"},
    lambda e: {**e, "event_time": "2026-02-30T10:00:00Z"},
    lambda e: {**e, "event_type": "purchase"},
    lambda e: b"{broken",
]


@dataclass(frozen=True)
class Result:
    name: str
    warmup_s: float
    median_s: float
    min_s: float
    max_s: float
    median_cpu_s: float
    repeats: int


def _event(i: int) -> dict[str, Any]:
    at = RECORD_TIME + timedelta(milliseconds=i)
    return {
        "event_id": str(uuid.UUID(int=i, version=4)),
        "event_type": "page_view" if i % 5 else "product_view",
        "event_time": at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z",
        "user_id": f"u{i % 700}",
        "session_id": f"s{i % 500}",
        "page_url": f"/p{i % 30}",
        "referrer": "https://example.com/",
        "ip_address": f"10.1.{i % 250}.{i % 200}",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
        "device": "mobile",
        "country": "DE",
    }


def _records(spark: SparkSession, count: int, *, mixed: bool) -> DataFrame:
    rows = []
    for i in range(count):
        payload: dict[str, Any] | bytes = _event(i)
        if mixed and i % 4 == 3:
            payload = BREAKAGES[(i // 4) % len(BREAKAGES)](_event(i))
        value = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        rows.append((b"k", value, "clickstream.events", i % 6, i // 6, RECORD_TIME))
    frame = spark.createDataFrame(rows, KAFKA_SCHEMA).cache()
    frame.count()
    return frame


def _jvm_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load_module(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_baseline_spark", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement after one warm-up")
    parser.add_argument("--baseline-module", help="a spark.py whose validate_records is measured alongside")
    args = parser.parse_args(argv)

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("rtap-bench-classify")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.driver.memory", "2g")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    jvm_pid = int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())  # type: ignore[union-attr]
    load_before = os.getloadavg()[0]
    valid = _records(spark, args.records, mixed=False)
    mixed = _records(spark, args.records, mixed=True)

    def noop(frame: DataFrame) -> None:
        frame.write.format("noop").mode("overwrite").save()

    def validate(fn: Callable[..., DataFrame], frame: DataFrame) -> DataFrame:
        return fn(frame, value="value", record_timestamp="timestamp", **LIMITS)

    payload = F.col("value").cast("string")
    cases: dict[str, Callable[[], object]] = {
        "try_parse_json (valid)": lambda: noop(valid.select(F.try_parse_json(payload))),
        "from_json typed (valid)": lambda: noop(valid.select(F.from_json(payload, TYPED_SCHEMA))),
        "validate_records (valid)": lambda: noop(validate(validate_records, valid)),
        "validate_records (mixed)": lambda: noop(validate(validate_records, mixed)),
        "validate_records plan only": lambda: validate(validate_records, valid),
    }
    if args.baseline_module:
        baseline = _load_module(args.baseline_module).validate_records
        cases["baseline validate_records (valid)"] = lambda: noop(validate(baseline, valid))
        cases["baseline validate_records (mixed)"] = lambda: noop(validate(baseline, mixed))
        cases["baseline plan only"] = lambda: validate(baseline, valid)

    wall: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats + 1):  # alternate, so a burst of load elsewhere hits every case alike
        for name, run in cases.items():
            cpu_start, start = _jvm_cpu_s(jvm_pid), time.perf_counter()
            run()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(_jvm_cpu_s(jvm_pid) - cpu_start)
    spark.stop()

    results = [
        Result(
            name=name,
            warmup_s=wall[name][0],
            median_s=statistics.median(wall[name][1:]),
            min_s=min(wall[name][1:]),
            max_s=max(wall[name][1:]),
            median_cpu_s=statistics.median(cpu[name][1:]),
            repeats=args.repeats,
        )
        for name in cases
    ]
    by_name = {r.name: r for r in results}
    floor = by_name["from_json typed (valid)"]
    ratios = {
        r.name: {"wall": r.median_s / floor.median_s, "cpu": r.median_cpu_s / max(floor.median_cpu_s, 1e-9)}
        for r in results
        if "validate_records (" in r.name
    }
    command = "python -m bench.bench_classify " + shlex.join(argv if argv is not None else sys.argv[1:])
    meta = {
        "command": command.strip(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_before": round(load_before, 1),
        "load_average_after": round(os.getloadavg()[0], 1),
        "records": args.records,
        "limits": LIMITS,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "classify.json").write_bytes(
        orjson.dumps(
            {**meta, "results": [asdict(r) for r in results], "ratios_to_from_json": ratios},
            option=orjson.OPT_INDENT_2,
        )
    )
    lines = [
        "# Contract validation in Spark",
        "",
        f"Command: `{meta['command']}` ({meta['when']}, {meta['cpus']} CPUs, Python {meta['python']},"
        f" 1-min load average {meta['load_average_before']} before, {meta['load_average_after']} after)",
        "",
        f"{args.records:,} records per measurement (mixed: one in four invalid), cached input, local[2],"
        f" `write.format('noop')`; {args.repeats} timed repeats after one warm-up, alternating cases."
        " CPU = CPU time of the Spark JVM during the run (steadier than wall time on a shared machine).",
        "",
        "| measurement | median wall s | spread (min .. max) | median JVM CPU s | warm-up s |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        spread = f"{r.min_s:.2f} .. {r.max_s:.2f}"
        lines.append(f"| {r.name} | {r.median_s:.2f} | {spread} | {r.median_cpu_s:.2f} | {r.warmup_s:.2f} |")
    lines += ["", "Ratios to `from_json` typed (medians):", ""]
    for name, ratio in ratios.items():
        lines.append(f"- {name}: wall {ratio['wall']:.1f}x, CPU {ratio['cpu']:.1f}x")
    (RESULTS / "classify.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
