"""The stream job's matching of a batch against the stored copies its duplicate lookup found, on the driver.

    .venv/bin/python -m bench.bench_match [--batches 1000,5000,16000,50000] [--copies 0.01] [--repeats 20]

``WarehouseSink._events_to_insert`` takes the lookup's answer (``STORED_COPIES``: each stored copy of a candidate's
id, with its Kafka record and block) and decides per candidate: a duplicate (a copy from another record), already
written (the same record: a replayed batch), or new. Its cost is the driver's own, beside the lookup's query
(``bench_lookup``). A batch pays it whenever one of its events has a copy stored by an earlier batch: rare with
``rtap_bench.traffic``, whose re-sends follow their original within the batch, and common with real clients,
which re-send seconds later (a browser after a timeout). Measured in the same run, alternating, wall time of one
call (no I/O: the lookup's answer is given):

* **before** (rtap 6c4af7b): every candidate of the batch through a Python loop;
* **after**: the candidates with a stored copy found by Arrow's ``is_in``, and only those through the loop.

Both must give the same rows. The first repeat (warm-up) is left out of the medians. Results:
bench/results/match.json and .md.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import uuid
from typing import Any

import numpy as np
import pyarrow as pa
from rtap_bench.results import run_facts, write_results

from rtap.stream.sink import WarehouseSink

TOPIC = "clickstream.events"


def batch(records: int, copies: float, seed: int) -> tuple[pa.Table, pa.Table]:
    """A batch of candidates (6 partitions) and the lookup's answer: a stored copy, from another record, of
    ``copies`` of them."""
    rng = random.Random(seed)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(records)]
    candidates = pa.table(
        {
            "event_id": pa.array(ids),
            "event_time": pa.array(np.zeros(records, np.int64), pa.timestamp("ms", tz="UTC")),
            "kafka_topic": pa.array([TOPIC] * records),
            "kafka_partition": pa.array(np.arange(records) % 6, pa.int32()),
            "kafka_offset": pa.array(np.arange(records), pa.int64()),
        }
    )
    found = sorted(rng.sample(range(records), max(1, int(records * copies))))
    known = pa.table(
        {
            "event_id": pa.array([ids[i] for i in found]),
            "stored_topic": pa.array([TOPIC] * len(found)),
            "stored_partition": pa.array([found_at % 6 for found_at in found], pa.int32()),
            "stored_offset": pa.array([records + n for n in range(len(found))], pa.int64()),  # an earlier batch
            "stored_block": pa.array([7] * len(found), pa.uint64()),
        }
    )
    return candidates, known


def before(candidates: pa.Table, known: pa.Table) -> tuple[pa.Table, pa.Table, set[int]]:
    """``WarehouseSink._events_to_insert`` at 6c4af7b, after its query: a Python loop over every candidate."""
    copies: dict[str, list[tuple[tuple[Any, ...], int]]] = {}
    stored = zip(*(known[c].to_pylist() for c in known.column_names), strict=True)
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
    accepted = candidates.filter(pa.array(~duplicate))
    return accepted, accepted, set() if not written.any() else blocks


class _Answer:
    """The lookup's answer without a warehouse: the sink's client, for its one query here."""

    def __init__(self, known: pa.Table) -> None:
        self.known = known

    def query_arrow(self, *_args: object, **_kwargs: object) -> pa.Table:
        return self.known


def after(candidates: pa.Table, known: pa.Table) -> tuple[pa.Table, pa.Table, set[int]]:
    """``WarehouseSink._events_to_insert`` as the job runs it now, its query answered with ``known``."""
    sink = WarehouseSink.__new__(WarehouseSink)  # only the client and the topic are read on this path
    sink._client = _Answer(known)  # type: ignore[assignment]
    sink._topic = TOPIC
    return sink._events_to_insert(candidates)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1000,5000,16000,50000", help="candidates per batch, comma-separated")
    parser.add_argument("--copies", type=float, default=0.01, help="share of the candidates with a stored copy")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    for records in (int(b) for b in args.batches.split(",")):
        candidates, known = batch(records, args.copies, seed=records)
        runs: dict[str, list[float]] = {"before": [], "after": []}
        outcomes = {}
        for repeat in range(args.repeats + 1):
            for name, match in (("before", before), ("after", after)):
                started = time.perf_counter()
                outcomes[name] = match(candidates, known)
                if repeat:
                    runs[name].append(time.perf_counter() - started)
        if outcomes["before"][0] != outcomes["after"][0] or outcomes["before"][2] != outcomes["after"][2]:
            sys.exit(f"before and after disagree at {records} records")
        duplicates = records - outcomes["after"][0].num_rows
        row: dict[str, Any] = {"records": records, "copies": known.num_rows, "duplicates": duplicates}
        for name, times in runs.items():
            row[f"{name}_ms"] = round(statistics.median(times) * 1000, 2)
            row[f"{name}_us_per_record"] = round(statistics.median(times) * 1e6 / records, 2)
        row["before_over_after"] = round(row["before_ms"] / row["after_ms"], 1)
        rows.append(row)
        print(row, flush=True)
    facts = run_facts("bench_match", argv)
    markdown = [
        "# Matching a batch against its stored copies, on the driver",
        "",
        f"`{facts['command']}` ({facts['at']}): batches whose candidates have a stored copy from another "
        f"Kafka record in {args.copies:.0%} of cases; medians of {args.repeats} calls, alternating, same process.",
        "",
        "| records | copies | before: ms | after: ms | before: µs/record | after: µs/record | before / after |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {r['records']:,} | {r['copies']:,} | {r['before_ms']} | {r['after_ms']} | {r['before_us_per_record']} "
            f"| {r['after_us_per_record']} | {r['before_over_after']} |"
            for r in rows
        ),
        "",
        "Before: every candidate through a Python loop (rtap 6c4af7b). After: only the candidates Arrow's `is_in`"
        " finds among the copies.",
    ]
    write_results("match", {**facts, "copies": args.copies, "repeats": args.repeats, "rows": rows}, markdown)


if __name__ == "__main__":
    main()
