"""A micro-batch's cap in records and bytes (``rtap.stream.job.batch_cap``) and the record size it divides by,
read from the batches the job committed last (on the real embedded ClickHouse)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from rtap.settings import Settings, StreamSettings
from rtap.stream.job import DEFAULT_RECORD_BYTES, batch_cap, recent_record_bytes
from rtap.warehouse import WarehouseClient, create_client
from rtap.warehouse.migrate import apply_migrations

MIB = 2**20


def test_small_records_are_capped_by_count_large_ones_by_bytes() -> None:
    stream = StreamSettings(max_batch_records=20_000, max_batch_bytes=4 * MIB)
    assert batch_cap(stream, bytes_per_record=100.0) == 20_000  # 2 MB: the count binds
    assert batch_cap(stream, bytes_per_record=500.0) == 8_388  # 8,388 records of 500 bytes: 4,194,000 <= 4 MiB
    assert batch_cap(stream, bytes_per_record=10 * MIB) == 1  # never 0: a huge record still moves on
    assert batch_cap(stream, bytes_per_record=0.0) == 20_000  # no division by a size of 0


def test_before_any_batch_the_job_assumes_a_generous_record_size() -> None:
    assert DEFAULT_RECORD_BYTES == 1024
    assert batch_cap(StreamSettings(max_batch_bytes=MIB), DEFAULT_RECORD_BYTES) == 1_024  # 1 MiB of 1 KiB records


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[WarehouseClient]:
    with create_client(Settings(data_dir=tmp_path)) as client:
        apply_migrations(client)
        yield client


def commit(client: WarehouseClient, batch_id: int, rows: int, size: int) -> None:
    """A ``pipeline_batches`` row with only what the cap reads: later batches finish later."""
    finished = datetime(2026, 12, 2, 12, 0, tzinfo=UTC) + timedelta(seconds=batch_id)
    row = {
        "query_id": ["q"],
        "batch_id": [batch_id],
        "started_at": [finished],
        "finished_at": [finished],
        "input_rows": [rows],
        "input_bytes": [size],
    }
    client.insert_arrow("pipeline_batches", pa.table(row))


def test_the_record_size_is_the_average_of_the_last_committed_batches(warehouse: WarehouseClient) -> None:
    assert recent_record_bytes(warehouse) == DEFAULT_RECORD_BYTES  # nothing committed yet
    commit(warehouse, 0, rows=0, size=0)  # an empty batch (or one from before migration 0007) says nothing
    assert recent_record_bytes(warehouse) == DEFAULT_RECORD_BYTES
    for batch_id in range(1, 11):
        commit(warehouse, batch_id, rows=1_000, size=2_000_000)  # old batches of 2,000-byte records
    for batch_id in range(11, 31):
        commit(warehouse, batch_id, rows=1_000, size=400_000)  # the last 20: 400-byte records
    assert recent_record_bytes(warehouse) == 400.0
    commit(warehouse, 31, rows=3_000, size=3_000_000)  # weighted by records, not an average of averages
    assert recent_record_bytes(warehouse) == pytest.approx((19 * 400_000 + 3_000_000) / (19 * 1_000 + 3_000))
