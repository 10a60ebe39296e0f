"""K, run by another interpreter: ClickHouse's Kafka table engine in chDB computing ``page_views_1m``.

A standalone script (no rtap imports): ``rtap bench --k-python`` runs it with a Python whose chDB can still
create Kafka tables. chDB 4.4.0 (rtap's pin) refuses ``ENGINE = Kafka`` with ``Shutdown was called
(LOGICAL_ERROR)``; chDB 3.7.2 and 2.1.1 create it, but their ``background_message_broker_schedule_pool_size``
is 0, so a materialized view attached to the table is never fed (the streaming task has no pool to run in).
What chDB does run is a direct read of the Kafka table, so the materialized view's SELECT is driven here in a
loop: each ``INSERT ... SELECT FROM k_source`` reads one block from the consumer group (at most ``max_block_size``,
65,409 rows), aggregates it and commits the offsets, what the view's streaming task would do every flush.
A direct read commits only with ``kafka_commit_on_select = 1`` (off by default): without it the first read
returned one block and every later read of the group none, for minutes (chDB 3.7.2; no offset was committed).

Prints one JSON line: records read, seconds from the start of the first non-empty read to the last record, page views
counted and the chDB version.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from typing import Any

SOURCE = (
    "CREATE TABLE k.k_source (raw String) ENGINE = Kafka SETTINGS kafka_broker_list = '{brokers}', "
    "kafka_topic_list = '{topic}', kafka_group_name = '{group}', kafka_format = 'RawBLOB', "
    "kafka_num_consumers = 1, kafka_commit_on_select = 1"
)
# The counts are SimpleAggregateFunction(sum): a plain UInt64 column of an AggregatingMergeTree keeps one row's value
# when parts merge, so the totals fell (392,454 records read, then 131,212 counted) and K never saw the topic's end.
TARGET = (
    "CREATE TABLE k.k_page_views_1m (window_start DateTime('UTC'), page_url String, "
    "records SimpleAggregateFunction(sum, UInt64), views SimpleAggregateFunction(sum, UInt64), "
    "users AggregateFunction(uniqExact, String)) ENGINE = AggregatingMergeTree ORDER BY (window_start, page_url)"
)
# The view's SELECT: every record counted in `records` (to know when the topic is drained); page views of
# well-formed records only. Like a typical Kafka-engine pipeline it has no deduplication or lateness rule.
VIEW_SELECT = (
    "INSERT INTO k.k_page_views_1m SELECT "
    "toStartOfMinute(parseDateTime64BestEffortOrZero(JSONExtractString(raw, 'event_time'), 3, 'UTC')) "
    "AS window_start, JSONExtractString(raw, 'page_url') AS page_url, count() AS records, "
    "countIf(JSONExtractString(raw, 'event_type') IN ('page_view', 'product_view')) AS views, "
    "uniqExactStateIf(JSONExtractString(raw, 'user_id'), "
    "JSONExtractString(raw, 'event_type') IN ('page_view', 'product_view')) AS users "
    "FROM k.k_source GROUP BY window_start, page_url "
    "SETTINGS stream_like_engine_allow_direct_select = 1"
)
TOTALS = "SELECT sum(records), sum(views) FROM k.k_page_views_1m FORMAT CSV"


def main(path: str, brokers: str, topic: str, group: str, expected: int, timeout_s: float) -> None:
    # Whichever chDB the interpreter has (its stubs differ by version): used untyped.
    chdb: Any = importlib.import_module("chdb")
    sess: Any = importlib.import_module("chdb.session").Session(path)
    sess.query("CREATE DATABASE IF NOT EXISTS k ENGINE = Atomic")
    sess.query(SOURCE.format(brokers=brokers, topic=topic, group=group))
    sess.query(TARGET)
    deadline = time.monotonic() + timeout_s
    started: float | None = None
    records = views = 0
    while records < expected and time.monotonic() < deadline:
        block_started = time.perf_counter()
        sess.query(VIEW_SELECT)
        text = str(sess.query(TOTALS)).strip()
        records, views = (int(float(v or 0)) for v in text.split(",")) if text else (0, 0)
        if records and started is None:
            # From the start of the first read that returned records (it includes the group's join).
            started = block_started
    elapsed = time.perf_counter() - (started or time.perf_counter())
    print(json.dumps({"records": records, "seconds": elapsed, "views": views, "chdb": chdb.__version__}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), float(sys.argv[6]))
