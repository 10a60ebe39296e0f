"""The stream job's duplicate lookup: its cost per batch as the stored events grow, before and after migration 0010.

    .venv/bin/python -m bench.bench_lookup [--minutes 1,10,30,59] [--rate 5000] [--repeats 5]

One embedded ClickHouse (chDB) with rtap's migrations. Events with random ids are inserted into ``events`` at
``--rate`` events/s of event time from the start of an hour (the old lookup's worst case: the table's key starts
with the hour) up to each of ``--minutes`` in turn; at each step a batch of one second's events (new ids in the
newest second, 1% of them copies of stored events) is looked up both ways, alternating, ``--repeats`` times
after one warm-up:

* **before** (rtap 0a1ad30): ``events`` filtered by the batch's event-time range and the ids, which reads the
  whole hour: its key is (hour, event type, event id);
* **after**: ``event_ids`` (migration 0010, key: the minute of the event time, then the id) in the batch's
  minutes and their neighbours (``rtap.stream.sink.STORED_COPIES``).

Both must find the same copies. Results:
bench/results/lookup.json and .md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chdb import session as chdb_session
from rtap_bench.results import run_facts, write_results

from rtap.settings import Settings
from rtap.stream.sink import STORED_COPIES
from rtap.warehouse import create_client
from rtap.warehouse.migrate import apply_migrations

HOUR = datetime(2026, 12, 3, 13, 0, tzinfo=UTC)
TOPIC = "clickstream.events"
# The lookup before migration 0010 (rtap.stream.sink.KNOWN_DUPLICATES at 0a1ad30).
BEFORE = """
SELECT DISTINCT toString(e.event_id) AS event_id
FROM rtap.events AS e
WHERE e.event_time BETWEEN (SELECT min(event_time) FROM rtap.bench_candidates)
                       AND (SELECT max(event_time) FROM rtap.bench_candidates)
  AND e.event_id IN (SELECT toUUID(event_id) FROM rtap.bench_candidates)
  AND (if(e.kafka_topic = '', 'clickstream.events', e.kafka_topic), e.kafka_partition, e.kafka_offset)
      NOT IN (SELECT kafka_topic, kafka_partition, kafka_offset FROM rtap.bench_candidates)
"""
AFTER = (
    STORED_COPIES.replace("{db}", "rtap")
    .replace("$candidates", "rtap.bench_candidates")
    .replace("{topic:String}", f"'{TOPIC}'")
)


def fill(sess: Any, start: int, end: int, rate: int) -> None:
    """Events start..end-1: event n at HOUR + n / rate seconds, a random-looking id derived from n (MD5)."""
    sess.query(
        f"""
        INSERT INTO rtap.events (event_id, event_type, event_time, user_id, session_id, page_url, schema_version,
                                 kafka_topic, kafka_partition, kafka_offset, kafka_timestamp, batch_id, ingested_at)
        SELECT reinterpretAsUUID(MD5(toString(number))),
               'page_view', toDateTime64('{HOUR:%Y-%m-%d %H:%M:%S}', 3, 'UTC') + number / {rate},
               concat('u', toString(number % 5000)), concat('s', toString(number % 20000)), '/home', 1,
               '{TOPIC}', number % 6, number, now64(3), 0, now64(3)
        FROM numbers({start}, {end - start})
        """
    )


def candidates(sess: Any, stored: int, batch: int, rate: int) -> None:
    """A batch at the newest second: new ids, and 1% copies (other Kafka records) of stored events."""
    copies = batch // 100
    sess.query("DROP TABLE IF EXISTS rtap.bench_candidates")
    sess.query(
        f"""
        CREATE TABLE rtap.bench_candidates ENGINE = Memory AS
        SELECT toString(reinterpretAsUUID(MD5(toString(n)))) AS event_id,
               toDateTime64('{HOUR:%Y-%m-%d %H:%M:%S}', 3, 'UTC') + n / {rate} AS event_time,
               '{TOPIC}' AS kafka_topic, toInt32(n % 6) AS kafka_partition, toInt64(n + 1000000000) AS kafka_offset
        FROM (SELECT if(number < {copies}, {stored} - 1 - number, {stored} + number) AS n FROM numbers({batch}))
        """
    )


def timed(sess: Any, sql: str) -> tuple[float, int]:
    started = time.perf_counter()
    result = sess.query(sql, "CSV")
    elapsed = time.perf_counter() - started
    return elapsed, len(result.bytes().decode().splitlines())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", default="1,10,30,59", help="minutes of the hour stored at each step (< 60)")
    parser.add_argument("--rate", type=int, default=5_000, help="events per second of event time (and per batch)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    minutes = [int(m) for m in args.minutes.split(",")]
    if not 0 < min(minutes) <= max(minutes) < 60:
        parser.error("--minutes: each within the hour, 1..59")
    sizes = [m * 60 * args.rate for m in minutes]
    args.batch = args.rate
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="rtap-bench-lookup-") as tmp:
        settings = Settings(data_dir=Path(tmp))
        with create_client(settings) as client:
            apply_migrations(client)
        # chdb leaves its API untyped: Any keeps strict mypy useful for the rest.
        sess: Any = chdb_session.Session(str(settings.paths.chdb))  # type: ignore[no-untyped-call]
        stored = 0
        for size in sizes:
            fill(sess, stored, size, args.rate)
            stored = size
            sess.query("OPTIMIZE TABLE rtap.event_ids FINAL")  # as merges leave it in time: one part per day
            sess.query("OPTIMIZE TABLE rtap.events FINAL")
            candidates(sess, stored, args.batch, args.rate)
            runs: dict[str, list[tuple[float, int]]] = {"before": [], "after": []}
            for repeat in range(args.repeats + 1):
                for name, sql in (("before", BEFORE), ("after", AFTER)):
                    outcome = timed(sess, sql)
                    if repeat:
                        runs[name].append(outcome)
            found = {name: runs[name][0][1] for name in runs}
            if found["before"] != found["after"] or found["after"] != args.batch // 100:
                sys.exit(f"the lookups disagree at {size} events: {found} (expected {args.batch // 100} copies)")
            row: dict[str, Any] = {
                "minutes": size // 60 // args.rate,
                "stored_events": size,
                "batch": args.batch,
                "copies_found": found["after"],
            }
            for name, outcomes in runs.items():
                row[f"{name}_ms"] = round(statistics.median(o[0] for o in outcomes) * 1000, 1)
            row["before_over_after"] = round(row["before_ms"] / row["after_ms"], 1)
            rows.append(row)
            print(row, flush=True)
        sess.close()
    result: dict[str, Any] = {
        **run_facts("bench_lookup", argv),
        "rate_events_per_s": args.rate,
        "steps": rows,
    }
    command = result["command"]
    lines = [
        "# The duplicate lookup per batch, as stored events grow",
        "",
        f"`{command}` ({result['at']}): events at {args.rate:,} events/s of event time, all in one hour; a batch of "
        f"{args.batch:,} candidates at the newest second, 1% of them copies. Medians of {args.repeats} runs, "
        f"alternating, same process; load average at the end {result['load_average_at_end']} on "
        f"{result['machine']['cpus']} cores.",
        "",
        "| minutes of the hour stored | stored events | before: ms | after: ms | before / after |",
        "|---:|---:|---:|---:|---:|",
        *(
            f"| {r['minutes']} | {r['stored_events']:,} | {r['before_ms']} | {r['after_ms']} "
            f"| {r['before_over_after']} |"
            for r in rows
        ),
        "",
        "Before: `events` by the batch's event-time range, which its key (hour, type, id) cannot narrow below the "
        "hour. After: `event_ids` (migration 0010) by the minutes of the batch and their neighbours.",
    ]
    write_results("lookup", result, lines)


if __name__ == "__main__":
    main()
