"""Write one classified micro-batch to ClickHouse with an exactly-once effect.

Called on the driver from ``foreachBatch`` with the batch as Arrow (see ``rtap.stream.job``). Every write is
idempotent, so Spark may re-run a batch after a crash at any point without changing any table:

- each INSERT carries ``insert_deduplication_token = "<pipeline>:<batch>:<table>"``: a retried insert of the
  same batch into the same table is dropped by ClickHouse (the tables keep a deduplication window);
- every decision is a function of the batch and of state committed *before* it (the previous batch's
  ``pipeline_batches`` row, and ``events`` rows from other Kafka records), never of this batch's own writes;
- ``pipeline_batches`` is written last: it is the batch's commit record and the next batch's state.

The windowed tables are maintained as mergeable partial aggregates: the batch's insert into ``events`` feeds
its partial states (``*_state``, materialized views of migration 0008), then the sink rewrites the final rows of
the windows it touched from the merged states. Any failure
raises: the batch fails, Spark does not commit its offsets, and the batch is re-run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from rtap import metrics
from rtap.contract import REQUIRED_FIELDS
from rtap.contract.vocabulary import ACCEPTED, DEAD_LETTER, DUPLICATE, LATE
from rtap.settings import StreamSettings
from rtap.stream.transforms import EVENT_COLUMNS, TopicPartition
from rtap.warehouse import WarehouseClient

if TYPE_CHECKING:
    from rtap.stream.kafka import PartitionLag

EVENT_TABLE_COLUMNS = (
    *EVENT_COLUMNS,
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "kafka_timestamp",
    "batch_id",
    "ingested_at",
)
_EVENT_SELECT = ", ".join("toUUID(event_id)" if c == "event_id" else c for c in EVENT_TABLE_COLUMNS)
_EVENT_INSERT = ", ".join(EVENT_TABLE_COLUMNS)

# A candidate is a duplicate when an event with its id is already stored from a *different* Kafka record.
# Comparing records rather than batch ids keeps the answer identical when this batch is replayed after its
# own rows were written. Copies of an event carry the same event_time, so the time range bounds the scan.
KNOWN_DUPLICATES = """
SELECT DISTINCT toString(e.event_id) AS event_id
FROM {db}.events AS e
WHERE e.event_time BETWEEN (SELECT min(event_time) FROM $candidates) AND (SELECT max(event_time) FROM $candidates)
  AND e.event_id IN (SELECT toUUID(event_id) FROM $candidates)
  AND (if(e.kafka_topic = '', {topic:String}, e.kafka_topic), e.kafka_partition, e.kafka_offset)
      NOT IN (SELECT kafka_topic, kafka_partition, kafka_offset FROM $candidates)
"""

INSERT_EVENTS = f"INSERT INTO {{db}}.events ({_EVENT_INSERT}) SELECT {_EVENT_SELECT} FROM $rows"
INSERT_LATE = f"INSERT INTO {{db}}.late_events ({_EVENT_INSERT}) SELECT {_EVENT_SELECT} FROM $rows"
INSERT_DEAD_LETTERS = """
INSERT INTO {db}.dead_letters (received_at, topic, `partition`, `offset`, kafka_timestamp, error, raw, batch_id)
SELECT ingested_at, kafka_topic, kafka_partition, kafka_offset, kafka_timestamp, error, raw, batch_id FROM $rows
"""

# Final rows of every window the batch touched, recomputed from the merged partial states.
# version = wall-clock microseconds: a later rewrite always wins under FINAL, and it is at least as complete.
_TOUCHED = "(SELECT DISTINCT toStartOfMinute(event_time) FROM $rows)"
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

INSERT_BATCH = """
INSERT INTO {db}.pipeline_batches
    (query_id, batch_id, started_at, finished_at, input_rows, valid, duplicates, late, dead_letters, duration_ms,
     rows_per_second, watermark, max_event_time, freshness_ms, kafka_lag, topic_high_water, topic_end_offsets,
     input_bytes)
SELECT query_id, batch_id, started_at, finished_at, input_rows, valid, duplicates, late, dead_letters,
       duration_ms, rows_per_second, watermark, max_event_time, freshness_ms, kafka_lag,
       mapFromArrays(hw_topics, arrayMap((p, t) -> mapFromArrays(p, t), hw_partitions, hw_times)),
       mapFromArrays(offset_topics, arrayMap((p, o) -> mapFromArrays(p, o), offset_partitions, offsets)),
       input_bytes
FROM $rows
"""

# Before migration 0009 a batch recorded the partitions of the contract-v1 topic only, in partition_high_water.
LAST_HIGH_WATER = """
SELECT if(empty(topic_high_water), map({topic:String}, partition_high_water), topic_high_water)
FROM {db}.pipeline_batches FINAL
WHERE (query_id = {query_id:String} AND batch_id < {batch_id:Int64}) OR query_id != {query_id:String}
ORDER BY query_id = {query_id:String} DESC, if(query_id = {query_id:String}, batch_id, 0) DESC, finished_at DESC
LIMIT 1
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


class DeadLetterPublisher(Protocol):
    """Publishes a batch's dead letters to the DLQ topic (``rtap.stream.kafka``); raises on any failure."""

    def publish(self, rows: pa.Table) -> None: ...


def _status(table: pa.Table, status: str) -> pa.Table:
    return table.filter(pc.equal(table["status"], status))


def _with_lineage(table: pa.Table, batch_id: int, now: datetime) -> pa.Table:
    n = table.num_rows
    return table.append_column("batch_id", pa.array([batch_id] * n, pa.int64())).append_column(
        "ingested_at", pa.array([now] * n, pa.timestamp("ms", tz="UTC"))
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
    marks = dict(before)
    for key, moment in _max_by_partition(valid, "event_time").items():
        if not isinstance(moment, datetime):
            continue
        previous = marks.get(key)
        marks[key] = moment if previous is None or moment > previous else previous
    return marks


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
    ) -> None:
        """``topic``: the contract-v1 input topic, the one topic of rows written before migration 0009."""
        self._client = client
        self._topic = topic
        self._settings = settings
        self._pipeline_id = pipeline_id
        self._dead_letters = dead_letters
        self._kafka_lag = kafka_lag

    def high_water(self, batch_id: int) -> dict[TopicPartition, datetime]:
        """Per-partition event-time high-water marks committed before ``batch_id``.

        From this pipeline's previous batch; for a new pipeline (a fresh or deleted checkpoint), from the
        newest batch of any earlier one, so event time keeps moving forward across checkpoint resets.
        """
        rows = self._client.query_rows(
            LAST_HIGH_WATER, parameters={"query_id": self._pipeline_id, "batch_id": batch_id, "topic": self._topic}
        )
        if not rows:
            return {}
        # A Map arrives as a list of (key, value) pairs from Arrow.
        return {
            (topic, int(p)): t if t.tzinfo else t.replace(tzinfo=UTC)
            for topic, partitions in rows[0][0]
            for p, t in partitions
        }

    def _token(self, batch_id: int, table: str) -> dict[str, str]:
        return {"insert_deduplication_token": f"{self._pipeline_id}:{batch_id}:{table}"}

    def _insert(self, sql: str, rows: pa.Table, batch_id: int, table: str, **settings: object) -> None:
        if rows.num_rows:
            self._client.command(sql, inputs={"rows": rows}, settings={**self._token(batch_id, table), **settings})

    def write(
        self, batch_id: int, classified: pa.Table, started_at: datetime, high_water: Mapping[TopicPartition, datetime]
    ) -> BatchStats:
        """Write every record of the batch to exactly one place, then commit the batch record.

        ``high_water`` is what :meth:`high_water` returned for this batch (the state it was classified with).
        """
        now = datetime.now(UTC)
        table = _with_lineage(classified, batch_id, now)
        dead = _status(table, DEAD_LETTER)
        late = _required_not_null(_status(table, LATE))
        candidates = _required_not_null(_status(table, ACCEPTED))
        in_batch_duplicates = _status(table, DUPLICATE).num_rows

        self._dead_letters.publish(dead)
        self._insert(INSERT_DEAD_LETTERS, dead, batch_id, "dead_letters")
        self._insert(INSERT_LATE, late, batch_id, "late_events")

        accepted = candidates
        if candidates.num_rows:
            keys = candidates.select(["event_id", "event_time", "kafka_topic", "kafka_partition", "kafka_offset"])
            known = self._client.query_arrow(
                KNOWN_DUPLICATES, inputs={"candidates": keys}, parameters={"topic": self._topic}
            )
            if known.num_rows:
                accepted = candidates.filter(pc.invert(pc.is_in(candidates["event_id"], known["event_id"])))
        stored_duplicates = candidates.num_rows - accepted.num_rows

        # Also the batch's partial aggregates: materialized views on events (migration 0008), each state table
        # deduplicating its own block of a retried insert.
        self._insert(INSERT_EVENTS, accepted, batch_id, "events", deduplicate_blocks_in_dependent_materialized_views=1)
        if accepted.num_rows:
            threshold = {"threshold": int(self._settings.bot_clicks_per_minute)}
            for sql in FINALS.values():
                self._client.command(sql, inputs={"rows": accepted}, parameters=threshold)

        valid = table.filter(pc.not_equal(table["status"], DEAD_LETTER))
        high_water = _merged_high_water(high_water, valid)
        end_offsets = {key: int(str(o)) + 1 for key, o in _max_by_partition(table, "kafka_offset").items()}
        lag = self._kafka_lag(end_offsets)
        max_event_time = max(high_water.values()) if high_water else None
        finished = datetime.now(UTC)
        duration_ms = max(1, int((finished - started_at).total_seconds() * 1000))
        stats = BatchStats(
            batch_id=batch_id,
            input_rows=table.num_rows,
            accepted=accepted.num_rows,
            duplicates=in_batch_duplicates + stored_duplicates,
            late=late.num_rows,
            dead_letters=dead.num_rows,
            duration_ms=duration_ms,
            max_event_time=max_event_time,
            kafka_lag=sum(partition.records for partition in lag.values()),
            input_bytes=int(pc.sum(table["record_bytes"]).as_py() or 0),
        )
        self._commit(stats, started_at, finished, high_water, end_offsets)
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
    ) -> None:
        delay_ms = int(self._settings.watermark_delay_s * 1000)
        max_time = stats.max_event_time
        watermark = None if max_time is None else max_time.timestamp() * 1000 - delay_ms
        freshness = None if max_time is None else int((finished - max_time).total_seconds() * 1000)
        marks, offsets = _by_topic(high_water), _by_topic(end_offsets)
        utc_ms = pa.timestamp("ms", tz="UTC")
        row = pa.table(
            {
                "query_id": [self._pipeline_id],
                "batch_id": pa.array([stats.batch_id], pa.int64()),
                "started_at": pa.array([started], pa.timestamp("ms", tz="UTC")),
                "finished_at": pa.array([finished], pa.timestamp("ms", tz="UTC")),
                "input_rows": pa.array([stats.input_rows], pa.uint64()),
                "valid": pa.array([stats.accepted], pa.uint64()),
                "duplicates": pa.array([stats.duplicates], pa.uint64()),
                "late": pa.array([stats.late], pa.uint64()),
                "dead_letters": pa.array([stats.dead_letters], pa.uint64()),
                "duration_ms": pa.array([stats.duration_ms], pa.uint64()),
                "rows_per_second": pa.array([stats.input_rows * 1000.0 / stats.duration_ms], pa.float64()),
                "watermark": pa.array([None if watermark is None else int(watermark)], pa.timestamp("ms", tz="UTC")),
                "max_event_time": pa.array([max_time], pa.timestamp("ms", tz="UTC")),
                "freshness_ms": pa.array([freshness], pa.int64()),
                "kafka_lag": pa.array([stats.kafka_lag], pa.int64()),
                "hw_topics": pa.array([list(marks)], pa.list_(pa.string())),
                "hw_partitions": pa.array([[list(m) for m in marks.values()]], pa.list_(pa.list_(pa.int32()))),
                "hw_times": pa.array([[list(m.values()) for m in marks.values()]], pa.list_(pa.list_(utc_ms))),
                "offset_topics": pa.array([list(offsets)], pa.list_(pa.string())),
                "offset_partitions": pa.array([[list(o) for o in offsets.values()]], pa.list_(pa.list_(pa.int32()))),
                "offsets": pa.array([[list(o.values()) for o in offsets.values()]], pa.list_(pa.list_(pa.int64()))),
                "input_bytes": pa.array([stats.input_bytes], pa.uint64()),
            }
        )
        self._client.command(INSERT_BATCH, inputs={"rows": row}, settings=self._token(stats.batch_id, "batches"))
