"""Kafka records and contract events as the stream job's transforms see them, without a broker."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession

from rtap.contract.formats import SourceReader, reader
from rtap.contract.model import LEGACY_FORMAT, NATIVE_FORMAT
from rtap.stream.spark import KAFKA_COLUMNS
from rtap.stream.transforms import TopicPartition, classify, parse_records

# After every event time the tests use: a record moves its partition's mark at most a second past its timestamp.
RECORD_TIME = datetime(2026, 11, 29, 13, 0, tzinfo=UTC)
TOPIC = "clickstream.events"
LEGACY_TOPIC = "previous.clickstream_events"
# The job's topics in these tests: rtap's own, and one of the previous system's format.
FORMATS = {TOPIC: NATIVE_FORMAT, LEGACY_TOPIC: LEGACY_FORMAT}
MAX_RECORD_BYTES = 4096  # the record size limit of these tests' readers


def event(n: int, event_time: str = "2026-11-29T12:00:00.000Z", **fields: object) -> dict[str, object]:
    """A valid page_view; ``fields`` override or (with value ...) remove keys."""
    record: dict[str, object] = {
        "event_id": f"00000000-0000-4000-8000-{n:012d}",
        "event_type": "page_view",
        "event_time": event_time,
        "user_id": f"u{n % 3}",
        "session_id": "s1",
        "page_url": "/home",
    }
    record.update(fields)
    return {k: v for k, v in record.items() if v is not ...}


def legacy_click(n: int, timestamp: str = "2026-11-29T12:00:00.000654", **fields: object) -> dict[str, object]:
    """A valid event of the previous system's format (rtap.contract.formats); ``fields`` override or (with
    value ...) remove keys."""
    record: dict[str, object] = {
        "event_id": f"10000000-0000-4000-8000-{n:012d}",
        "user_id": f"legacy-user-{n}",
        "page_url": "http://www.e-commerce-example.com/produtos/eletronicos",
        "ip_address": "203.0.113.7",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
        "timestamp": timestamp,
    }
    record.update(fields)
    return {k: v for k, v in record.items() if v is not ...}


def kafka_batch(
    spark: SparkSession, records: Sequence[tuple[int, int, object]], topic: str | list[str] = TOPIC
) -> DataFrame:
    """(partition, offset, payload) -> a DataFrame shaped like Spark's Kafka source output."""
    rows = []
    topics = [topic] * len(records) if isinstance(topic, str) else topic
    for (partition, offset, payload), name in zip(records, topics, strict=True):
        value = payload if isinstance(payload, bytes) or payload is None else orjson.dumps(payload)
        rows.append((b"s1", value, name, partition, offset, RECORD_TIME))
    return spark.createDataFrame(rows, KAFKA_COLUMNS)


def kafka_records(
    records: Sequence[tuple[int, int, object]],
    topic: str | list[str] = TOPIC,
    timestamps: Sequence[datetime] | None = None,
) -> pa.RecordBatch:
    """(partition, offset, payload) -> an Arrow batch shaped like what Spark hands the parse stage; ``topic``:
    the records' topic, or one per record; ``timestamps``: each record's Kafka timestamp (default RECORD_TIME)."""
    values = [p if isinstance(p, bytes) or p is None else orjson.dumps(p) for _, _, p in records]
    topics = [topic] * len(records) if isinstance(topic, str) else topic
    return pa.RecordBatch.from_pydict(
        {
            "key": pa.array([b"s1"] * len(records), pa.binary()),
            "value": pa.array(values, pa.binary()),
            "topic": pa.array(topics, pa.string()),
            "partition": pa.array([r[0] for r in records], pa.int32()),
            "offset": pa.array([r[1] for r in records], pa.int64()),
            "timestamp": pa.array(timestamps or [RECORD_TIME] * len(records), pa.timestamp("us", tz="UTC")),
        }
    )


def classify_records(
    records: Sequence[tuple[int, int, object]],
    high_water: dict[int, datetime] | dict[TopicPartition, datetime] | None = None,
    *,
    topic: str | list[str] = TOPIC,
    timestamps: Sequence[datetime] | None = None,
    watermark_delay_s: float = 30.0,
    max_record_bytes: int = MAX_RECORD_BYTES,
    max_future_skew_s: float = 3600.0,
) -> pa.Table:
    """The job's whole decision on one batch: parse (what Spark's workers run), then classify (the driver).
    ``high_water`` keyed by partition alone means partitions of the contract-v1 topic."""
    parsed = parse_locally(
        kafka_records(records, topic, timestamps),
        max_record_bytes=max_record_bytes,
        max_future_skew_s=max_future_skew_s,
    )
    marks = {(TOPIC, k) if isinstance(k, int) else k: v for k, v in (high_water or {}).items()}
    return classify(parsed, high_water=marks, watermark_delay_s=watermark_delay_s)


def readers(*, max_record_bytes: int = 4096, max_future_skew_s: float = 3600.0) -> dict[str, SourceReader]:
    """The job's readers of rtap's default input topics."""
    limits: dict[str, Any] = {"max_record_bytes": max_record_bytes, "max_future_skew_s": max_future_skew_s}
    return {topic: reader(name, **limits) for topic, name in FORMATS.items()}


def parse_locally(
    records: pa.RecordBatch, *, max_record_bytes: int = 4096, max_future_skew_s: float = 3600.0
) -> pa.Table:
    """What one Spark Python worker makes of ``records``."""
    chosen = readers(max_record_bytes=max_record_bytes, max_future_skew_s=max_future_skew_s)
    return pa.Table.from_batches([parse_records(records, chosen, max_raw_bytes=max_record_bytes)])


class KeptDeadLetters:
    """Stands in for the DLQ topic (rtap's own publisher interface, not Kafka's): the dead letters are the sink's
    to keep, each with its payload; nothing is published."""

    def publish(self, rows: pa.Table) -> None:
        assert rows.num_rows == 0 or rows["raw"].null_count == 0

    def delivered(self) -> None:
        """Nothing queued, nothing to wait for."""
