"""A local SparkSession for transform tests: in-process, no broker, no UI (like running one record through)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pytest
from pyspark.sql import DataFrame, SparkSession

KAFKA_SCHEMA = "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"
RECORD_TIME = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    session = (
        SparkSession.builder.master("local[1]")
        .appName("rtap-unit")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


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


def kafka_batch(spark: SparkSession, records: list[tuple[int, int, object]]) -> DataFrame:
    """(partition, offset, payload) -> a DataFrame shaped like Spark's Kafka source output."""
    rows = []
    for partition, offset, payload in records:
        value = payload if isinstance(payload, bytes) or payload is None else orjson.dumps(payload)
        rows.append((b"s1", value, "clickstream.events", partition, offset, RECORD_TIME))
    return spark.createDataFrame(rows, KAFKA_SCHEMA)
