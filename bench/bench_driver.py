"""The stream job's own per-batch work on the driver (Arrow and Python, no I/O), before and after each change.

    .venv/bin/python -m bench.bench_driver [--batches 1000,5000,16000,50000] [--copies 0.01] [--repeats 20]

Three steps of a micro-batch on the driver, each measured in the same run against the code it replaced (kept
here as the baseline), alternating, wall time of one call, on the same input; both must give the same result:

* **match** (``WarehouseSink._events_to_insert`` after its query): the batch's candidates against the stored
  copies the duplicate lookup found (``STORED_COPIES``): a duplicate (a copy from another record), already
  written (the same record: a replayed batch), or new. A batch pays it whenever one of its events has a copy
  stored by an earlier batch: rare with ``rtap_bench.traffic``, whose re-sends follow their original within the
  batch, and common with real clients, which re-send seconds later (a browser after a timeout). Here ``--copies``
  of the candidates have one. Before (rtap 6c4af7b): every candidate through a Python loop. After: only those
  Arrow's ``is_in`` finds among the copies.
* **order** (``rtap.stream.transforms._in_kafka_order``): the parsed batch put in Kafka order. Spark hands it
  back as one run per Kafka partition in the order of its tasks (here 0, 2, 4, 1, 3, 5, as two tasks read six
  partitions). Before (rtap 13fb7c2): a full sort of the table. After: the runs put in order as slices.
* **lineage** (``rtap.stream.sink._with_lineage``): each row's batch id and write time. Before (rtap 13fb7c2):
  from Python lists of one value per row. After: from NumPy.

Input: ``--batches`` records of ``rtap_bench.traffic`` (the live benchmarks' sender), parsed as the job's Python
workers parse them. The first repeat (warm-up) is left out of the medians. Results: bench/results/driver.json
and .md.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
from rtap_bench.parsed import parsed_records
from rtap_bench.results import run_facts, write_results
from rtap_bench.traffic import Traffic

from rtap.contract.vocabulary import ACCEPTED
from rtap.settings import Settings
from rtap.stream.sink import WarehouseSink, _with_lineage
from rtap.stream.transforms import _in_kafka_order, event_minutes

# Two tasks reading six partitions: the runs in which Spark hands a batch back.
TASK_ORDER = (0, 2, 4, 1, 3, 5)


def parsed_batch(records: int, settings: Settings) -> pa.Table:
    """``records`` of the live benchmarks' traffic on the contract-v1 topic, parsed as the job's workers parse them,
    one run per partition in :data:`TASK_ORDER`."""
    per_run = -(-records // len(TASK_ORDER))
    partitions = np.repeat(TASK_ORDER, per_run)[:records]
    return parsed_records(settings, Traffic(records, "driver", 1), 0, partitions, now=time.time())


def stored_copies(parsed: pa.Table, copies: float, seed: int) -> tuple[pa.Table, pa.Table]:
    """The batch's candidates and the lookup's answer: a stored copy, from another record, of ``copies`` of them."""
    candidates = parsed.select(["event_id", "event_time", "kafka_topic", "kafka_partition", "kafka_offset"])
    candidates = candidates.filter(parsed["error"].is_null())
    count = candidates.num_rows
    candidates = candidates.append_column("status", pa.array([ACCEPTED] * count, pa.string()))
    candidates = candidates.append_column("behind_ms", pa.array(np.zeros(count, dtype=np.int64)))
    found = sorted(random.Random(seed).sample(range(count), max(1, int(count * copies))))
    rows = candidates.take(pa.array(found, pa.int64()))
    known = pa.table(
        {
            "event_id": rows["event_id"],
            "stored_topic": rows["kafka_topic"],
            "stored_partition": rows["kafka_partition"],
            "stored_offset": pa.array(np.arange(len(found)) + 10**9, pa.int64()),  # another, earlier record
            "stored_block": pa.array(np.full(len(found), 7), pa.uint64()),
            "stored_minute": pa.array(event_minutes(rows["event_time"]), pa.int64()),  # a re-send: the same minute
        }
    )
    return candidates, known


def match_before(candidates: pa.Table, known: pa.Table) -> tuple[pa.Table, set[int]]:
    """``WarehouseSink._events_to_insert`` at 6c4af7b, after its query: a Python loop over every candidate."""
    copies: dict[str, list[tuple[tuple[Any, ...], int]]] = {}
    stored = zip(*(known[c].to_pylist() for c in known.column_names[:5]), strict=True)  # before: no minutes
    for event_id, topic, partition, offset, block in stored:
        copies.setdefault(event_id, []).append(((topic, partition, offset), block))
    duplicate = np.zeros(candidates.num_rows, dtype=bool)
    written = np.zeros(candidates.num_rows, dtype=bool)
    blocks: set[int] = set()
    columns = ("event_id", "kafka_topic", "kafka_partition", "kafka_offset")
    for index, (event_id, *record) in enumerate(zip(*(candidates[c].to_pylist() for c in columns), strict=True)):
        found = copies.get(event_id, [])
        same = [block for where, block in found if where == tuple(record)]
        duplicate[index] = bool(found) and not same
        written[index] = bool(same)
        blocks.update(same)
    return candidates.filter(pa.array(~duplicate)), set() if not written.any() else blocks


class _Answer:
    """The lookup's answer without a warehouse: the sink's client, for its one query here."""

    def __init__(self, known: pa.Table) -> None:
        self.known = known

    def query_arrow(self, *_args: object, **_kwargs: object) -> pa.Table:
        return self.known


def answering_sink(known: pa.Table, settings: Settings) -> WarehouseSink:
    """A sink whose warehouse answers every query with ``known``: ``_events_to_insert`` makes one, the lookup."""

    def no_lag(_offsets: object) -> dict[Any, Any]:
        return {}

    return WarehouseSink(
        _Answer(known),  # type: ignore[arg-type]  # only its query_arrow is called here
        settings.stream,
        "bench-driver",
        dead_letters=None,  # type: ignore[arg-type]  # never published to here
        kafka_lag=no_lag,
        topic=settings.kafka.topic,
    )


def match_after(sink: WarehouseSink, candidates: pa.Table) -> tuple[pa.Table, set[int]]:
    """``WarehouseSink._events_to_insert`` as the job runs it now (its query answered by ``sink``'s stand-in)."""
    accepted, _, blocks, _ = sink._events_to_insert(candidates, {})
    return accepted, blocks


def order_before(parsed: pa.Table) -> pa.Table:
    """``_in_kafka_order`` at 13fb7c2 on a batch out of order: a full sort."""
    return parsed.sort_by(
        [("kafka_topic", "ascending"), ("kafka_partition", "ascending"), ("kafka_offset", "ascending")]
    )


def lineage_before(parsed: pa.Table, batch_id: int, now: datetime) -> pa.Table:
    """``_with_lineage`` at 13fb7c2: a Python list of one value per row."""
    n = parsed.num_rows
    return parsed.append_column("batch_id", pa.array([batch_id] * n, pa.int64())).append_column(
        "ingested_at", pa.array([now] * n, pa.timestamp("ms", tz="UTC"))
    )


def timed(
    before: Callable[[], Any], after: Callable[[], Any], repeats: int
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Both, alternating, ``repeats`` times after one warm-up: their times (s) and their last results."""
    runs: dict[str, list[float]] = {"before": [], "after": []}
    outcomes: dict[str, Any] = {}
    for repeat in range(repeats + 1):
        for name, call in (("before", before), ("after", after)):
            started = time.perf_counter()
            outcomes[name] = call()
            if repeat:
                runs[name].append(time.perf_counter() - started)
    return runs, outcomes


def same(step: str, before: Any, after: Any) -> bool:
    if step == "match":
        return bool(before[0].equals(after[0]) and before[1] == after[1])
    return bool(before.combine_chunks().equals(after.combine_chunks()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1000,5000,16000,50000", help="records per batch, comma-separated")
    parser.add_argument("--copies", type=float, default=0.01, help="match: share of candidates with a stored copy")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    settings = Settings()
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for records in (int(b) for b in args.batches.split(",")):
        parsed = parsed_batch(records, settings)
        candidates, known = stored_copies(parsed, args.copies, seed=records)
        steps: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
            "match": (
                partial(match_before, candidates, known),
                partial(match_after, answering_sink(known, settings), candidates),
            ),
            "order": (partial(order_before, parsed), partial(_in_kafka_order, parsed)),
            "lineage": (partial(lineage_before, parsed, 3, now), partial(_with_lineage, parsed, 3, now)),
        }
        for step, (before, after) in steps.items():
            runs, outcomes = timed(before, after, args.repeats)
            if not same(step, outcomes["before"], outcomes["after"]):
                sys.exit(f"{step}: before and after disagree at {records} records")
            row: dict[str, Any] = {"step": step, "records": records}
            if step == "match":
                row["copies"] = known.num_rows
            for name, times in runs.items():
                row[f"{name}_ms"] = round(statistics.median(times) * 1000, 2)
                row[f"{name}_us_per_record"] = round(statistics.median(times) * 1e6 / records, 3)
            row["before_over_after"] = round(row["before_ms"] / row["after_ms"], 1)
            rows.append(row)
            print(row, flush=True)
    facts = run_facts("bench_driver", argv)
    markdown = [
        "# The stream job's per-batch work on the driver, before and after",
        "",
        f"`{facts['command']}` ({facts['at']}): batches of `rtap_bench.traffic` parsed as the job's workers parse "
        f"them, one run per partition in task order {TASK_ORDER}; match: {args.copies:.0%} of the candidates with a "
        f"copy stored from another record. Medians of {args.repeats} calls, alternating, same process; each pair "
        "checked to give the same result.",
        "",
        "| step | records | before: ms | after: ms | before: µs/record | after: µs/record | before / after |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {r['step']} | {r['records']:,} | {r['before_ms']} | {r['after_ms']} | {r['before_us_per_record']} "
            f"| {r['after_us_per_record']} | {r['before_over_after']} |"
            for r in rows
        ),
        "",
        "match: before, every candidate through a Python loop (6c4af7b); after, only those Arrow's `is_in` finds "
        "among the copies. order: before, a full sort (13fb7c2); after, the runs as slices. lineage: before, Python "
        "lists of a value per row (13fb7c2); after, NumPy.",
    ]
    write_results("driver", {**facts, "copies": args.copies, "repeats": args.repeats, "rows": rows}, markdown)


if __name__ == "__main__":
    main()
