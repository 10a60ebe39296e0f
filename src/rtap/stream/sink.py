"""Write one classified micro-batch to ClickHouse with an exactly-once effect.

Called on the driver from ``foreachBatch`` with the batch as Arrow (see ``rtap.stream.job``). Every write is
idempotent, so Spark may re-run a batch after a crash at any point without changing any table:

- each INSERT carries ``insert_deduplication_token = "rtap:<table>:<digest>"``, the digest of the Kafka records
  (topic, partition, offset) of the block: a retried insert of the same records into the same table is
  dropped by ClickHouse (the tables keep a deduplication window), whichever pipeline (checkpoint) writes it;
- a batch cut at other offsets than an attempt that already wrote some of its records (the checkpoint was
  lost, and the job resumed from the warehouse's last committed batch) finds those records stored, by their
  Kafka coordinates, and writes only the others: ``events`` through ``event_ids`` (which also names the
  block that wrote each id), ``late_events`` and ``dead_letters`` by their keys;
- one INSERT INTO events is not atomic: ClickHouse writes ``events``, then each materialized view in turn, so a
  kill between them leaves a block that some views lack. The same block re-sent under its token fills exactly
  those views: a retried batch re-sends its own block, and a batch cut anew re-sends every stored block its
  records name, whole, from ``events`` (its token and event times recorded in ``event_blocks`` just before the
  block was inserted: migration 0012), even where the new cut holds only some of its records;
- every decision is a function of the batch and of state committed *before* it (the previous batch's
  ``pipeline_batches`` row, and ``events`` rows from other Kafka records), never of this batch's own writes;
- ``pipeline_batches`` is written last: it is the batch's commit record and the next batch's state.

The windowed tables are maintained as mergeable partial aggregates: the batch's insert into ``events`` feeds
its partial states (``*_state``, materialized views of migration 0008), then the sink rewrites the final rows of
the windows it touched from the merged states. Any failure
raises: the batch fails, Spark does not commit its offsets, and the batch is re-run.

Every read above (the stored copies, the states the final rows come from, the high-water marks) must see the
sink's own earlier writes. chDB is one engine; on a server behind a load balancer the writing client makes every
insert a quorum insert and every read sequentially consistent (rtap.warehouse.server.client, and
docs/clickhouse-server.md), so a replica that lacks a write refuses the read and the batch re-runs.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rtap import metrics
from rtap.contract import REQUIRED_FIELDS
from rtap.contract.vocabulary import DEAD_LETTER, DUPLICATE
from rtap.settings import StreamSettings
from rtap.stream.transforms import EVENT_COLUMNS, TopicPartition, event_minutes, judged_for_copies, later_copies
from rtap.warehouse import WarehouseClient

if TYPE_CHECKING:
    from rtap.stream.kafka import PartitionLag

log = logging.getLogger("rtap.stream")

EVENT_TABLE_COLUMNS = (
    *EVENT_COLUMNS,
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "kafka_timestamp",
    "batch_id",
    "ingested_at",
    "block_id",
)
_EVENT_SELECT = ", ".join("toUUID(event_id)" if c == "event_id" else c for c in EVENT_TABLE_COLUMNS)
_EVENT_INSERT = ", ".join(EVENT_TABLE_COLUMNS)
# events' last key column (migration 0016): the minute the duplicate lookup looks for an event's copies around.
# Two copies of an event_id two minutes or more apart are two events (transforms.later_copies), and this keeps
# FINAL from collapsing them into one when they share an hour and a type, as the aggregates count both.
_STORED_EVENT_COLUMNS = f"{_EVENT_INSERT}, dedup_minute"
_STORED_EVENT_VALUES = f"{_EVENT_SELECT}, toStartOfMinute(event_time)"  # a batch's rows as events stores them

# The candidates' stored copies, with their minutes: one from another Kafka record is an accepted event the
# candidates of its id are judged against (transforms.later_copies: a copy in a neighbouring minute is a duplicate);
# one from the same record was stored by an earlier attempt at this batch. A copy carries its event time (to within
# a minute: the tracker's re-sends differ by the network's jitter), so the lookup reads the candidates' minutes and
# their neighbours by event_ids' key: the same few minutes of rows whatever the table's size (migration 0010). It
# returns a copy in any of those minutes; the rule then pairs each with its own candidates' minutes. The table
# alias keeps the id's condition on the UUID column (the key), not on the String the SELECT names event_id.
STORED_COPIES = """
SELECT DISTINCT toString(e.event_id) AS event_id, if(e.kafka_topic = '', {topic:String}, e.kafka_topic) AS stored_topic,
       e.kafka_partition AS stored_partition, e.kafka_offset AS stored_offset, e.block_id AS stored_block,
       intDiv(toUnixTimestamp(e.minute), 60) AS stored_minute
FROM {db}.event_ids AS e
WHERE e.minute IN (
        SELECT DISTINCT arrayJoin([m - 60, m, m + 60]) FROM (SELECT toStartOfMinute(event_time) AS m FROM $candidates)
      )
  AND e.event_id IN (SELECT toUUID(event_id) FROM $candidates)
"""

INSERT_EVENTS = f"INSERT INTO {{db}}.events ({_STORED_EVENT_COLUMNS}) SELECT {_STORED_EVENT_VALUES} FROM $rows"
# The write-ahead record of an events block (migration 0012), inserted just before the block.
INSERT_EVENT_BLOCK = """
INSERT INTO {db}.event_blocks (block_id, token, first_time, last_time, rows, written_at)
SELECT {block:UInt64}, {token:String}, {first:DateTime64(3, 'UTC')}, {last:DateTime64(3, 'UTC')}, {rows:UInt64},
       now64(3)
"""
STORED_BLOCKS = """
SELECT block_id, any(token), min(first_time), max(last_time) FROM {db}.event_blocks
WHERE block_id IN (SELECT block FROM $blocks) GROUP BY block_id
"""
# A stored block's rows, read back from events to be re-sent whole under its own token (found by the event times
# it spans, a second wider on each side: the span was taken from the batch's times before the column rounded them
# to milliseconds). Re-sent as an input like the first insert, never as INSERT ... SELECT FROM events: ClickHouse
# deduplicates a block that spans two partitions (midnight) only when it comes as the same single chunk of input,
# and a SELECT from a table yields a chunk per part (measured with chDB 26.9: the copy was stored again).
STORED_BLOCK_ROWS = f"""
SELECT {_STORED_EVENT_COLUMNS} FROM {{db}}.events
WHERE event_time BETWEEN {{first:DateTime64(3, 'UTC')}} - INTERVAL 1 SECOND
                     AND {{last:DateTime64(3, 'UTC')}} + INTERVAL 1 SECOND
  AND block_id = {{block:UInt64}}
"""
RESEND_EVENTS = f"INSERT INTO {{db}}.events ({_STORED_EVENT_COLUMNS}) SELECT {_STORED_EVENT_COLUMNS} FROM $rows"
# An events block is one insert block whatever its size, so a re-sent block carries the very rows its token
# named the first time (ClickHouse would otherwise cut an insert into blocks of about a million rows).
_ONE_BLOCK = {"min_insert_block_size_rows": 1 << 40, "min_insert_block_size_bytes": 1 << 50}
# optimize_on_insert off: ClickHouse would merge each block into itself before writing it (collapse the rows a
# ReplacingMergeTree or AggregatingMergeTree key repeats), in events and in each view's table, and in every block
# rtap inserts there the key is already unique: no two accepted records of an event_id share a minute (events' key
# ends with it), and each view groups by its own key. The pass found nothing and cost a fifth of a 36,000-record
# events insert on chDB (bench/results/sink.md); reads never relied on it (FINAL, or the states' merge functions).
_EVENTS_SETTINGS = {"deduplicate_blocks_in_dependent_materialized_views": 1, "optimize_on_insert": 0, **_ONE_BLOCK}
# The batch's late records and dead letters, less those an earlier attempt stored (by each table's key), in one
# statement each: the insert's own SELECT reads the table as it was before it. At 1,000 events/s most batches
# hold one or two of each; a read before each insert cost ~4 ms on chDB and the filter about as much, so this
# saves a server's round trip per kind, not chDB's time. The block is all the batch's records of the kind: its
# token is the same for the same records whoever sends them, and a batch cut anew names other records, so the
# filter, not the token, keeps their copies out.
INSERT_LATE = f"""
INSERT INTO {{db}}.late_events ({_STORED_EVENT_COLUMNS}) SELECT {_STORED_EVENT_VALUES} FROM $rows
WHERE (kafka_topic, kafka_partition, kafka_offset) NOT IN (
    SELECT if(kafka_topic = '', {{topic:String}}, kafka_topic), kafka_partition, kafka_offset FROM {{db}}.late_events
    WHERE (kafka_partition, kafka_offset) IN (SELECT kafka_partition, kafka_offset FROM $rows)
)
"""
INSERT_DEAD_LETTERS = """
INSERT INTO {db}.dead_letters
    (received_at, topic, `partition`, `offset`, kafka_timestamp, error, raw, raw_size, batch_id)
SELECT ingested_at, kafka_topic, kafka_partition, kafka_offset, kafka_timestamp, error, raw, raw_size, batch_id
FROM $rows
WHERE (kafka_topic, kafka_partition, kafka_offset) NOT IN (
    SELECT topic, `partition`, `offset` FROM {db}.dead_letters
    WHERE (topic, `partition`, `offset`) IN (SELECT kafka_topic, kafka_partition, kafka_offset FROM $rows)
)
"""

# Final rows of every window the batch touched (``minutes``), recomputed from the merged partial states.
# version = wall-clock microseconds: a later rewrite always wins under FINAL, and it is at least as complete.
# The minutes come as a parameter, not as an input table: no external table for a server to receive, and on chDB
# ~1 ms less a statement (9.0-9.2 against 9.8-10.2 ms, at 350 records a batch).
_TOUCHED = "(SELECT arrayJoin({minutes:Array(DateTime64(3, 'UTC'))}))"
# At most this many minutes a statement (a batch of a backlog can span days): a server takes parameters in the
# request's URL, whose size it limits (http_max_uri_size, 1 MiB by default).
FINALS_MINUTES = 1_000
FINALS = {
    "page_views_1m": f"""
INSERT INTO {{db}}.page_views_1m
SELECT window_start, page_url, sum(views), uniqExactMerge(users), toUnixTimestamp64Micro(now64(6)), now64(3)
FROM {{db}}.page_views_1m_state WHERE window_start IN {_TOUCHED}
GROUP BY window_start, page_url
""",
    "events_1m": f"""
INSERT INTO {{db}}.events_1m
SELECT window_start, event_type, sum(events), uniqExactMerge(users), uniqExactMerge(orders), sum(revenue),
       toUnixTimestamp64Micro(now64(6)), now64(3)
FROM {{db}}.events_1m_state WHERE window_start IN {_TOUCHED}
GROUP BY window_start, event_type
""",
    "bot_suspects": f"""
INSERT INTO {{db}}.bot_suspects
SELECT window_start, actor_kind, actor, sum(clicks) AS total, {{threshold:UInt64}}, toUnixTimestamp64Micro(now64(6)),
       now64(3)
FROM {{db}}.activity_1m_state WHERE window_start IN {_TOUCHED}
GROUP BY window_start, actor_kind, actor HAVING total > {{threshold:UInt64}}
""",
}

# The commit row as query parameters, not an Arrow input: one row, and on chDB the cheaper statement (at 1,000
# events/s 9.2 against 16.2 ms a batch, alternating on a loaded machine; the block record likewise, 8 against 13).
INSERT_BATCH = """
INSERT INTO {db}.pipeline_batches
    (query_id, batch_id, started_at, finished_at, input_rows, valid, duplicates, late, dead_letters, duration_ms,
     rows_per_second, watermark, max_event_time, freshness_ms, kafka_lag, topic_high_water, topic_end_offsets,
     input_bytes, topic_duplicates, topic_ids)
SELECT {query_id:String}, {batch_id:Int64}, {started_at:DateTime64(3, 'UTC')}, {finished_at:DateTime64(3, 'UTC')},
       {input_rows:UInt64}, {valid:UInt64}, {duplicates:UInt64}, {late:UInt64}, {dead_letters:UInt64},
       {duration_ms:UInt64}, {rows_per_second:Float64}, {watermark:Nullable(DateTime64(3, 'UTC'))},
       {max_event_time:Nullable(DateTime64(3, 'UTC'))}, {freshness_ms:Nullable(Int64)}, {kafka_lag:Int64},
       {marks:Map(String, Map(Int32, DateTime64(3, 'UTC')))}, {offsets:Map(String, Map(Int32, Int64))},
       {input_bytes:UInt64}, {topic_duplicates:Map(String, UInt64)}, {topic_ids:Map(String, String)}
"""

# Before migration 0009 a batch recorded the partitions of the contract-v1 topic only, in partition_high_water.
_MARKS = "if(empty(topic_high_water), map({topic:String}, partition_high_water), topic_high_water)"
# The marks this pipeline committed last before a batch: by pipeline_batches' key (query_id, batch_id).
PIPELINE_HIGH_WATER = f"""
SELECT {_MARKS} FROM {{db}}.pipeline_batches FINAL
WHERE query_id = {{query_id:String}} AND batch_id < {{batch_id:Int64}}
ORDER BY batch_id DESC LIMIT 1
"""
# A new pipeline's first batch (a fresh or lost checkpoint): the newest marks of any earlier one.
EARLIER_HIGH_WATER = f"""
SELECT {_MARKS} FROM {{db}}.pipeline_batches FINAL
WHERE query_id != {{query_id:String}}
ORDER BY finished_at DESC LIMIT 1
"""


@dataclass(frozen=True)
class BatchStats:
    """What one micro-batch did; also the ``pipeline_batches`` row."""

    batch_id: int
    input_rows: int
    accepted: int
    duplicates: int
    late: int
    dead_letters: int
    duration_ms: int
    max_event_time: datetime | None
    kafka_lag: int
    input_bytes: int = 0
    # The duplicates by the topic of their record (``duplicates`` is their sum).
    duplicates_by_topic: Mapping[str, int] = field(default_factory=dict)


# The thread the lag probe runs on beside a batch's writes (see WarehouseSink.write): one for the process, made on
# first use, whatever the number of sinks a job's restarts make; each write waits for its own probe.
_LAG_PROBES = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rtap-lag")


class DeadLetterPublisher(Protocol):
    """Publishes a batch's dead letters to the DLQ topic (``rtap.stream.kafka``)."""

    def publish(self, rows: pa.Table) -> None:
        """Queue ``rows`` for the topic (raises on a record the client refuses)."""

    def delivered(self) -> None:
        """Wait until every queued record is acknowledged; raises on any failure."""


def _status(table: pa.Table, status: str) -> pa.Table:
    return table.filter(pc.equal(table["status"], status))


def _count_by_topic(rows: pa.Table) -> Counter[str]:
    """How many of ``rows`` each Kafka topic holds."""
    counts = pc.value_counts(rows["kafka_topic"]) if rows.num_rows else []
    return Counter({str(item["values"]): int(item["counts"]) for item in (c.as_py() for c in counts)})


def _with_lineage(table: pa.Table, batch_id: int, now: datetime) -> pa.Table:
    """The batch's rows with their batch and the time it was written (one Arrow scalar repeated: Python lists of a
    value per row took 4.4 ms for 16,000 rows: ``bench/bench_driver.py``)."""
    n = table.num_rows
    return table.append_column("batch_id", pa.repeat(pa.scalar(batch_id, pa.int64()), n)).append_column(
        "ingested_at", pa.repeat(pa.scalar(now, pa.timestamp("ms", tz="UTC")), n)
    )


def _required_not_null(table: pa.Table) -> pa.Table:
    """Declare the contract's required fields non-null (they are, for valid rows), so ClickHouse sees ``String``
    rather than ``Nullable(String)``: aggregate states such as ``uniqExact(String)`` accept no other type."""
    schema = pa.schema(
        [f.with_nullable(False) if f.name in REQUIRED_FIELDS else f for f in table.schema],
        metadata=table.schema.metadata,
    )
    return table.cast(schema)


def _max_by_partition(table: pa.Table, value: str) -> dict[TopicPartition, object]:
    if table.num_rows == 0:
        return {}
    grouped = table.group_by(["kafka_topic", "kafka_partition"]).aggregate([(value, "max")])
    keys = zip(grouped["kafka_topic"].to_pylist(), grouped["kafka_partition"].to_pylist(), strict=True)
    return dict(zip(keys, grouped[f"{value}_max"].to_pylist(), strict=True))


def _merged_high_water(before: Mapping[TopicPartition, datetime], valid: pa.Table) -> dict[TopicPartition, datetime]:
    """``before`` moved on by the batch's valid records, each as far as its ``mark_time`` (rtap.stream.transforms)."""
    marks = dict(before)
    for key, moment in _max_by_partition(valid, "mark_time").items():
        if not isinstance(moment, datetime):
            continue
        previous = marks.get(key)
        marks[key] = moment if previous is None or moment > previous else previous
    return marks


def block_digest(rows: pa.Table) -> tuple[int, str]:
    """The identity of a block of rows: a digest of their Kafka records (topic, partition, offset), in order.

    The same records give the same digest whoever writes them, so it makes the insert's deduplication token
    (hex) and the rows' ``block_id`` (the first 8 bytes).
    """
    digest = hashlib.blake2b(digest_size=16)
    topics = pc.dictionary_encode(rows["kafka_topic"].combine_chunks())
    digest.update("\0".join(topics.dictionary.to_pylist()).encode())
    digest.update(np.asarray(topics.indices, dtype=np.int32).tobytes())
    digest.update(np.asarray(rows["kafka_partition"], dtype=np.int32).tobytes())
    digest.update(np.asarray(rows["kafka_offset"], dtype=np.int64).tobytes())
    value = digest.digest()
    return int.from_bytes(value[:8], "little"), value.hex()


def touched_minutes(times: pa.ChunkedArray | pa.Array) -> set[datetime]:
    """The minutes (windows) that ``times`` fall in: the ``minutes`` parameter of :data:`FINALS`."""
    return set(pc.unique(pc.floor_temporal(times, unit="minute")).to_pylist())


def rewrite_final_rows(client: WarehouseClient, minutes: Iterable[datetime], bot_threshold: int) -> None:
    """Rewrite the final rows of the windows of ``minutes`` from their merged states (:data:`FINALS`),
    :data:`FINALS_MINUTES` minutes a statement."""
    ordered = sorted(minutes)
    for start in range(0, len(ordered), FINALS_MINUTES):
        parameters = {"minutes": ordered[start : start + FINALS_MINUTES], "threshold": bot_threshold}
        for sql in FINALS.values():
            client.command(sql, parameters=parameters)


_RECORD_COLUMNS = ("kafka_topic", "kafka_partition", "kafka_offset")


def _records(table: pa.Table, columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """The rows of ``columns`` as tuples (for the few rows a replay or a duplicate concerns)."""
    return list(zip(*(table[c].to_pylist() for c in columns), strict=True))


def _by_topic(values: Mapping[TopicPartition, object]) -> dict[str, dict[int, object]]:
    nested: dict[str, dict[int, object]] = {}
    for (topic, partition), value in sorted(values.items()):
        nested.setdefault(topic, {})[partition] = value
    return nested


class WarehouseSink:
    """Idempotent writer of classified micro-batches (see the module docstring for the protocol)."""

    def __init__(
        self,
        client: WarehouseClient,
        settings: StreamSettings,
        pipeline_id: str,
        dead_letters: DeadLetterPublisher,
        kafka_lag: Callable[[Mapping[TopicPartition, int]], Mapping[TopicPartition, PartitionLag]],
        *,
        topic: str,
        topic_ids: Mapping[str, str] | None = None,
    ) -> None:
        """``topic``: the contract-v1 input topic, the one topic of rows written before migration 0009.
        ``topic_ids``: the id of each input topic, recorded with every batch (rtap.stream.identity)."""
        self._client = client
        self._topic = topic
        self._topic_ids = dict(topic_ids or {})
        self._settings = settings
        self._pipeline_id = pipeline_id
        self._dead_letters = dead_letters
        self._kafka_lag = kafka_lag
        # (batch_id, marks) of the batch this sink committed last: the next batch's state without a query.
        self._committed: tuple[int, dict[TopicPartition, datetime]] | None = None

    def high_water(self, batch_id: int) -> dict[TopicPartition, datetime]:
        """Per-partition event-time high-water marks committed before ``batch_id``.

        From this pipeline's previous batch (kept from its commit, or read by key after a restart); for a new
        pipeline (a fresh or deleted checkpoint), from the newest batch of any earlier one, so event time keeps
        moving forward across checkpoint resets.
        """
        if self._committed is not None and self._committed[0] == batch_id - 1:
            return dict(self._committed[1])
        parameters = {"query_id": self._pipeline_id, "batch_id": batch_id, "topic": self._topic}
        rows = self._client.query_rows(PIPELINE_HIGH_WATER, parameters=parameters) or self._client.query_rows(
            EARLIER_HIGH_WATER, parameters=parameters
        )
        if not rows:
            return {}
        # A Map arrives as a list of (key, value) pairs from Arrow.
        return {
            (topic, int(p)): t if t.tzinfo else t.replace(tzinfo=UTC)
            for topic, partitions in rows[0][0]
            for p, t in partitions
        }

    def _insert(
        self,
        sql: str,
        rows: pa.Table,
        table: str,
        *,
        parameters: Mapping[str, object] | None = None,
        settings: Mapping[str, object] | None = None,
    ) -> None:
        """Insert ``rows`` as one block, deduplicated by the digest of their Kafka records."""
        if not rows.num_rows:
            return
        block, token = block_digest(rows)
        if table in ("events", "late_events"):  # the rows name their block (event_ids tells it per id)
            rows = rows.append_column("block_id", pa.array(np.full(rows.num_rows, block, np.uint64)))
        token = f"rtap:{table}:{token}"
        if table == "events":
            self._record_block(rows, block, token)
        self._send_block(sql, rows, token, settings or {}, parameters)

    def _send_block(
        self,
        sql: str,
        rows: pa.Table,
        token: str,
        settings: Mapping[str, object],
        parameters: Mapping[str, object] | None = None,
    ) -> None:
        """``rows`` as one chunk of input under ``token``: a first insert and a re-sent block take the same shape,
        so ClickHouse deduplicates the same parts (see STORED_BLOCK_ROWS)."""
        settings = {"insert_deduplication_token": token, **settings}
        self._client.command(sql, inputs={"rows": rows.combine_chunks()}, parameters=parameters, settings=settings)

    def _record_block(self, rows: pa.Table, block: int, token: str) -> None:
        """The write-ahead record of an events block: what re-sends it if a view lacks it (migration 0012).
        Parameters, not an Arrow input: one row, and the cheaper statement (about 8 ms against 13 on chDB)."""
        span = pc.min_max(rows["event_time"]).as_py()
        parameters = {"block": block, "token": token, "first": span["min"], "last": span["max"], "rows": rows.num_rows}
        self._client.command(
            INSERT_EVENT_BLOCK, parameters=parameters, settings={"insert_deduplication_token": f"{token}:block"}
        )

    def _resend(self, blocks: set[int]) -> set[datetime]:
        """Re-send each stored events block whole, from ``events``, under its own token: a view that lacks it
        (a kill between the tables of its insert) catches up, one that has it drops it. The minutes the blocks
        span, whose final rows must be rewritten."""
        if not blocks:
            return set()
        found = self._client.query_arrow(
            STORED_BLOCKS, inputs={"blocks": pa.table({"block": pa.array(sorted(blocks), pa.uint64())})}
        )
        if missing := blocks - set(found.column(0).to_pylist()):  # inserted before migration 0012
            log.warning("events blocks %s have no record in event_blocks: not re-sent", sorted(missing))
        minutes: set[datetime] = set()
        for block, token, first, last in _records(found, tuple(found.column_names)):
            first, last = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (first, last))
            rows = self._client.query_arrow(
                STORED_BLOCK_ROWS, parameters={"block": block, "first": first, "last": last}
            )
            self._send_block(RESEND_EVENTS, rows, token, _EVENTS_SETTINGS)
            minute = first.replace(second=0, microsecond=0)
            while minute <= last:
                minutes.add(minute)
                minute += timedelta(minutes=1)
        return minutes

    def _events_to_insert(
        self, pool: pa.Table, end_offsets: Mapping[TopicPartition, int]
    ) -> tuple[pa.Table, pa.Table, set[int], pa.Table]:
        """(accepted, to insert, stored blocks, late) of ``pool``, the batch's valid records in Kafka order as
        classify judged the batch alone: the records accepted once the copies stored by earlier batches count too;
        of those the rows to insert now; the blocks that stored the others, to re-send (see the module docstring on
        a block stored by an earlier attempt); the records behind the watermark that copy no accepted event. Only
        the records at most :data:`~rtap.contract.vocabulary.COPY_LOOKBACK_MS` behind are looked up (classify judged
        none further behind a copy): the minutes the lookup reads stay those of the newest events.

        A copy stored from one of the pool's own records was accepted by an earlier attempt. A copy from a record
        before the batch's end (``end_offsets``: where it ends in each partition) is an accepted event the pool's
        copies of its id are judged against (:func:`rtap.stream.transforms.later_copies`, the same rule as in the
        batch). One from a record past that end was stored by an attempt that read further before its checkpoint
        was lost; it comes after every record here, which it was judged after."""
        behind_ms = np.asarray(pool["behind_ms"])
        behind, checked = behind_ms > 0, judged_for_copies(behind_ms)
        duplicate = np.array(pc.equal(pool["status"], DUPLICATE), dtype=bool)  # a copy: written to below
        known = pa.table({})
        if checked.any():
            keys = pool.filter(pa.array(checked))
            keys = keys.select(["event_id", "event_time", "kafka_topic", "kafka_partition", "kafka_offset"])
            parameters = {"topic": self._topic}
            known = self._client.query_arrow(STORED_COPIES, inputs={"candidates": keys}, parameters=parameters)
        written = np.zeros(pool.num_rows, dtype=bool)
        blocks: set[int] = set()
        if known.num_rows:
            ids = pool["event_id"]
            found = pc.fill_null(pc.is_in(ids, value_set=known["event_id"].cast(ids.type)), False)
            rows = np.flatnonzero(np.asarray(found) & checked)
            # Only the few records with a stored copy are looked at one by one (a Python loop over the whole batch
            # cost 2.1-2.3 us a record on the driver: bench/bench_driver.py).
            found_rows = pool.take(pa.array(rows, pa.int64()))
            own = {tuple(r): row for row, r in zip(rows, _records(found_rows, _RECORD_COLUMNS), strict=True)}
            stored: dict[str, list[int]] = {}
            for event_id, topic, partition, offset, block, minute in _records(known, tuple(known.column_names)):
                row = own.get((topic, partition, offset))
                if row is not None:
                    written[row] = True
                    blocks.add(block)
                elif offset < end_offsets.get((topic, partition), offset + 1):
                    stored.setdefault(event_id, []).append(minute)
            # Every copy of those ids in the batch is among found_rows, in Kafka order: judged again with the stored.
            duplicate[rows] = later_copies(
                found_rows["event_id"].combine_chunks(),
                event_minutes(found_rows["event_time"]),
                np.ones(len(rows), dtype=bool),
                stored=stored,
                kept=written[rows],
                acceptable=~behind[rows],
            )
        accepted = pool.filter(pa.array(~duplicate & ~behind))
        late = pool.filter(pa.array(~duplicate & behind))
        if not written.any() or blocks == {block_digest(accepted)[0]}:
            return accepted, accepted, set(), late  # nothing stored yet, or this very block: re-sent whole
        return accepted, pool.filter(pa.array(~duplicate & ~behind & ~written)), blocks, late

    def write(
        self,
        batch_id: int,
        classified: pa.Table,
        started_at: datetime,
        high_water: Mapping[TopicPartition, datetime],
        planned: Mapping[TopicPartition, int] | None = None,
    ) -> BatchStats:
        """Write every record of the batch to exactly one place, then commit the batch record.

        ``high_water`` is what :meth:`high_water` returned for this batch (the state it was classified with).
        ``planned``, from the stream job, is where Spark planned the batch to end in each partition
        (rtap.stream.checkpoint.planned_offsets): the positions the batch leaves the job at, past the transaction
        markers and aborted records no record shows. Without it (a batch not read by Spark) each partition's
        position is the offset after its last record.
        """
        now = datetime.now(UTC)
        table = _with_lineage(classified, batch_id, now)
        dead = _status(table, DEAD_LETTER)
        pool = _required_not_null(table.filter(pc.not_equal(table["status"], DEAD_LETTER)))

        end_offsets = (
            dict(planned)
            if planned is not None
            else {key: int(str(o)) + 1 for key, o in _max_by_partition(table, "kafka_offset").items()}
        )
        # The two Kafka round trips of a batch (the dead letters' acknowledgement, the log ends the lag is measured
        # against) overlap the warehouse writes instead of adding to them: ~5 ms each a batch (py-spy on `rtap up`
        # at 10,000 events/s). The lag is therefore the log end as the batch's writes began.
        probe = _LAG_PROBES.submit(self._kafka_lag, end_offsets)
        try:
            self._dead_letters.publish(dead)
            self._insert(INSERT_DEAD_LETTERS, dead, "dead_letters")
            accepted, new_events, stored_blocks, late = self._events_to_insert(pool, end_offsets)
            self._insert(INSERT_LATE, late, "late_events", parameters={"topic": self._topic})
            # By topic: the copies in the batch and of events stored before.
            by_topic = _count_by_topic(pool) - _count_by_topic(accepted) - _count_by_topic(late)

            # Also the batch's partial aggregates: materialized views on events (migration 0008), each state table
            # deduplicating its own block of a retried insert.
            resent = self._resend(stored_blocks)
            self._insert(INSERT_EVENTS, new_events, "events", settings=_EVENTS_SETTINGS)
            if accepted.num_rows:
                minutes = touched_minutes(accepted["event_time"]) | resent
                rewrite_final_rows(self._client, minutes, int(self._settings.bot_clicks_per_minute))

            high_water = _merged_high_water(high_water, pool)
            self._dead_letters.delivered()
        except BaseException:
            probe.exception()  # waits for it (at most one probe runs); the write's failure is the one raised
            raise
        lag = probe.result()
        max_event_time = max(high_water.values()) if high_water else None
        finished = datetime.now(UTC)
        duration_ms = max(1, int((finished - started_at).total_seconds() * 1000))
        stats = BatchStats(
            batch_id=batch_id,
            input_rows=table.num_rows,
            accepted=accepted.num_rows,
            duplicates=pool.num_rows - accepted.num_rows - late.num_rows,
            duplicates_by_topic=dict(by_topic),
            late=late.num_rows,
            dead_letters=dead.num_rows,
            duration_ms=duration_ms,
            max_event_time=max_event_time,
            kafka_lag=sum(partition.records for partition in lag.values()),
            input_bytes=int(pc.sum(table["record_bytes"]).as_py() or 0),
        )
        self._commit(stats, started_at, finished, high_water, end_offsets, table)
        metrics.STREAM.batch_committed(
            stats,
            event_times=accepted["event_time"],
            dead_letter_errors=dead["error"],
            kafka_lag=lag,
            committed_at=finished,
        )
        return stats

    def _commit(
        self,
        stats: BatchStats,
        started: datetime,
        finished: datetime,
        high_water: Mapping[TopicPartition, datetime],
        end_offsets: Mapping[TopicPartition, int],
        batch: pa.Table,
    ) -> None:
        max_time = stats.max_event_time
        watermark = None if max_time is None else max_time - timedelta(seconds=self._settings.watermark_delay_s)
        freshness = None if max_time is None else int((finished - max_time).total_seconds() * 1000)
        parameters = {
            "query_id": self._pipeline_id,
            "batch_id": stats.batch_id,
            "started_at": started,
            "finished_at": finished,
            "input_rows": stats.input_rows,
            "valid": stats.accepted,
            "duplicates": stats.duplicates,
            "late": stats.late,
            "dead_letters": stats.dead_letters,
            "duration_ms": stats.duration_ms,
            "rows_per_second": stats.input_rows * 1000.0 / stats.duration_ms,
            "watermark": watermark,
            "max_event_time": max_time,
            "freshness_ms": freshness,
            "kafka_lag": stats.kafka_lag,
            "marks": _by_topic(high_water),
            "offsets": _by_topic(end_offsets),
            "input_bytes": stats.input_bytes,
            "topic_duplicates": stats.duplicates_by_topic,
            "topic_ids": self._topic_ids,
        }
        token = f"rtap:batches:{self._pipeline_id}:{stats.batch_id}:{block_digest(batch)[1]}"
        self._client.command(INSERT_BATCH, parameters=parameters, settings={"insert_deduplication_token": token})
        self._committed = (stats.batch_id, dict(high_water))
