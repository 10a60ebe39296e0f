"""The stream job's warehouse write per micro-batch on chDB (``WarehouseSink.write``), before and after a change of
its events insert's settings.

    .venv/bin/python -m bench.bench_sink [--batches 300,3000,36000] [--count 40] [--rate 54000]

For each size in ``--batches``, one embedded ClickHouse (chDB) with rtap's migrations and one sink writes
``--count`` batches of ``rtap_bench.traffic`` (the live benchmarks' sender, its re-sends, truncated JSON and late
events included), parsed and classified as the job does, their event times advancing at ``--rate`` events/s (36,000
records at 54,000/s: a batch of the 30-minute soak's rate). The batches alternate between the two variants of the
events insert, in one process and one stream of data:

* **before**: the settings as of rtap 664c06a, ClickHouse's ``optimize_on_insert`` on (it merges each inserted block
  into itself: collapses rows whose ReplacingMergeTree or AggregatingMergeTree key repeats, in events and in each
  materialized view's table);
* **after**: ``rtap.stream.sink`` as it is (``optimize_on_insert`` off).

Per batch: the whole write's wall time and this process's CPU time over it (chDB runs in the process, its merges
included), and the events insert's own time (events and its six views). Medians over each variant's batches, the
first two of each left out (the tables' first parts). The runs are exact only if the pass had nothing to do, so at
the end ``events`` must hold as many rows as ``events FINAL`` and as the batches accepted. Results:
bench/results/sink.json and .md.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from rtap_bench.parsed import parsed_records
from rtap_bench.procfs import cpu_jiffies, steal_share
from rtap_bench.results import run_facts, write_results
from rtap_bench.traffic import Traffic

import rtap.stream.sink as sink_module
from rtap.settings import Settings
from rtap.stream.sink import WarehouseSink
from rtap.stream.transforms import classify
from rtap.warehouse import WarehouseClient, create_client
from rtap.warehouse.migrate import apply_migrations

VARIANTS = {
    "before": {**sink_module._EVENTS_SETTINGS, "optimize_on_insert": 1},
    "after": dict(sink_module._EVENTS_SETTINGS),
}
PARTITIONS = 6
SKIPPED = 2  # each variant's first batches: the tables' first parts


class _NoDeadLetterTopic:
    """The sink publishes dead letters to Kafka; here there is no broker, and the topic is not measured."""

    def publish(self, rows: pa.Table) -> None:
        del rows

    def delivered(self) -> None:
        """Nothing was sent."""


def _size(records: int, count: int, rate: float) -> dict[str, Any]:
    """``count`` batches of ``records`` through one sink, the variants alternating; the medians per variant."""
    names = list(VARIANTS)
    measured: dict[str, dict[str, list[float]]] = {n: {"wall": [], "cpu": [], "events": []} for n in names}
    with tempfile.TemporaryDirectory(prefix="rtap-bench-sink-") as tmp:
        settings = Settings(data_dir=Path(tmp))
        stream = settings.stream
        traffic = Traffic(records * count, "bench-sink", 1)
        partitions = np.arange(records) % PARTITIONS
        with create_client(settings) as client:
            apply_migrations(client)
            variant = names[0]
            command = client.command

            def timed_command(sql: str, **kwargs: Any) -> None:
                started = time.perf_counter()
                command(sql, **kwargs)
                if sql == sink_module.INSERT_EVENTS:
                    measured[variant]["events"].append(time.perf_counter() - started)

            client.command = timed_command  # type: ignore[method-assign]
            sink = WarehouseSink(client, stream, "bench-sink", _NoDeadLetterTopic(), lambda _: {},
                                 topic=settings.kafka.topic)  # fmt: skip
            start, accepted = time.time(), 0
            for batch in range(count):
                variant = names[batch % len(names)]
                sink_module._EVENTS_SETTINGS = VARIANTS[variant]
                now = start + batch * records / rate
                parsed = parsed_records(settings, traffic, batch * records, partitions, now=now, rate=rate)
                high_water = sink.high_water(batch)
                classified = classify(parsed, high_water=high_water, watermark_delay_s=stream.watermark_delay_s)
                cpu, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
                stats = sink.write(batch, classified, datetime.now(UTC), high_water)
                after = resource.getrusage(resource.RUSAGE_SELF)
                measured[variant]["wall"].append(time.perf_counter() - wall)
                measured[variant]["cpu"].append(after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime)
                accepted += stats.accepted
            sink_module._EVENTS_SETTINGS = VARIANTS["after"]
            stored = _stored(client)
    if stored != (accepted, accepted):
        sys.exit(f"batches of {records}: events holds {stored[0]} rows, {stored[1]} under FINAL; {accepted} accepted")
    row: dict[str, Any] = {"records": records, "batches": count, "events_stored": accepted}
    for name in names:
        for what, values in measured[name].items():
            row[f"{name}_{what}_ms"] = round(statistics.median(values[SKIPPED:]) * 1000, 1)
    for what in ("wall", "cpu", "events"):
        row[f"{what}_after_over_before"] = round(row[f"after_{what}_ms"] / row[f"before_{what}_ms"], 2)
    return row


def _stored(client: WarehouseClient) -> tuple[int, int]:
    """Rows in events, and under FINAL."""
    ((plain,),) = client.query_rows("SELECT count() FROM {db}.events")
    ((final,),) = client.query_rows("SELECT count() FROM {db}.events FINAL")
    return int(plain), int(final)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="300,3000,36000", help="records per batch, comma-separated")
    parser.add_argument("--count", type=int, default=40, help="batches per size (the variants alternate)")
    parser.add_argument("--rate", type=float, default=54_000.0, help="events/s the batches' event times advance at")
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.batches.split(",")]
    if min(sizes) < 1 or args.count < 2 * (SKIPPED + 1) or args.rate <= 0:
        parser.error(f"--batches >= 1 each, --count >= {2 * (SKIPPED + 1)}, --rate > 0")
    rows, ticks = [], cpu_jiffies()
    for size in sizes:
        rows.append(_size(size, args.count, args.rate))
        print(rows[-1], flush=True)
    steal = round(steal_share(ticks, cpu_jiffies()), 3)
    result: dict[str, Any] = {**run_facts("bench_sink", argv), "rate_events_per_s": args.rate, "steal": steal,
                              "sizes": rows}  # fmt: skip
    lines = [
        "# The warehouse write per micro-batch, before and after",
        "",
        f"`{result['command']}` ({result['at']}; 1-min load average {result['load_average_at_end'][0]:.1f} at the "
        f"end; CPU time stolen by the host's other tenants: {steal:.0%}): "
        f"batches of `rtap_bench.traffic` parsed and classified as the job does, event times advancing at "
        f"{args.rate:,.0f} events/s, written by one `WarehouseSink` to chDB, the variants alternating batch by "
        f"batch; medians of each variant's batches, its first {SKIPPED} left out. before: `optimize_on_insert` on "
        "(ClickHouse's default, rtap until 2026-12-05); after: off. Every run stored each accepted event once, and "
        "`events` held as many rows as `events FINAL` (the pass had nothing to collapse).",
        "",
        "| records a batch | write, before | write, after | CPU, before | CPU, after | events insert, before "
        "| events insert, after | after / before (write, CPU, events insert) |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['records']:,} | {row['before_wall_ms']} ms | {row['after_wall_ms']} ms | "
            f"{row['before_cpu_ms']} ms | {row['after_cpu_ms']} ms | {row['before_events_ms']} ms | "
            f"{row['after_events_ms']} ms | {row['wall_after_over_before']}, {row['cpu_after_over_before']}, "
            f"{row['events_after_over_before']} |"
        )
    write_results("sink", result, lines)


if __name__ == "__main__":
    main()
