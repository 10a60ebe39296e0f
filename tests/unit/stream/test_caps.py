"""A micro-batch's cap in records and bytes (``rtap.stream.caps.batch_cap``) and the record size it divides by,
read from the batches the job committed last (on the real embedded ClickHouse)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from rtap.settings import Settings, StreamSettings
from rtap.stream.caps import DEFAULT_RECORD_BYTES, SIZE_LOOKBACK, BatchCaps, batch_cap, recent_record_bytes
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


def commit(client: WarehouseClient, batch_id: int, rows: int, size: int, query_id: str = "q") -> None:
    """A ``pipeline_batches`` row with only what the cap reads: later batches finish later."""
    finished = datetime(2026, 12, 2, 12, 0, tzinfo=UTC) + timedelta(seconds=batch_id)
    row = {
        "query_id": [query_id],
        "batch_id": [batch_id],
        "started_at": [finished],
        "finished_at": [finished],
        "input_rows": [rows],
        "input_bytes": [size],
    }
    client.insert_arrow("pipeline_batches", pa.table(row))


def test_the_record_size_is_the_average_of_the_last_committed_batches(warehouse: WarehouseClient) -> None:
    def size(last: int | None) -> float:
        return recent_record_bytes(warehouse, "q", last)

    assert size(None) == DEFAULT_RECORD_BYTES  # nothing committed yet
    commit(warehouse, 0, rows=0, size=0)  # an empty batch (or one from before migration 0007) says nothing
    assert size(0) == DEFAULT_RECORD_BYTES
    for batch_id in range(1, 11):
        commit(warehouse, batch_id, rows=1_000, size=2_000_000)  # old batches of 2,000-byte records
    for batch_id in range(11, 31):
        commit(warehouse, batch_id, rows=1_000, size=400_000)  # the last 20: 400-byte records
    assert size(30) == 400.0
    commit(warehouse, 31, rows=3_000, size=3_000_000)  # weighted by records, not an average of averages
    assert size(31) == pytest.approx((19 * 400_000 + 3_000_000) / (19 * 1_000 + 3_000))
    assert size(30) == size(31)  # the warehouse one batch ahead of Spark's commit log (an overlapped write)
    assert size(15) == (10 * 2_000_000 + 6 * 400_000) / 16_000  # up to the batch given and the one after it


def test_the_record_size_reads_this_pipelines_recent_batch_ids_only(warehouse: WarehouseClient) -> None:
    """A range of pipeline_batches' key, however many batches it keeps: another pipeline's batches (a checkpoint
    set aside) and this one's older than SIZE_LOOKBACK batch ids do not count."""
    commit(warehouse, 5, rows=1_000, size=9_000_000, query_id="another")
    commit(warehouse, 1, rows=1_000, size=4_000_000)
    assert recent_record_bytes(warehouse, "q", SIZE_LOOKBACK + 2) == DEFAULT_RECORD_BYTES
    commit(warehouse, SIZE_LOOKBACK + 2, rows=1_000, size=300_000)
    assert recent_record_bytes(warehouse, "q", SIZE_LOOKBACK + 2) == 300.0
    plan = warehouse.query_rows(
        "EXPLAIN indexes = 1 SELECT input_bytes FROM {db}.pipeline_batches FINAL WHERE query_id = 'q' "
        "AND batch_id BETWEEN 2 AND 202"
    )
    assert any("PrimaryKey" in line for (line,) in plan), plan  # the key serves it


def caps(records: int = 200_000, by_bytes: int = 128 * MIB) -> BatchCaps:
    stream = StreamSettings(max_batch_records=records, max_batch_bytes=by_bytes)
    return BatchCaps(stream, current=stream.max_batch_records)


def test_a_batch_that_ran_out_of_memory_is_planned_again_a_quarter_as_large_down_to_one_record() -> None:
    """60,000 records of 40 KB in a 1 GiB driver (module docstring): 15,000, then 3,750... never 0."""
    batch = caps()
    assert batch.for_query(300.0) == 200_000
    assert batch.out_of_memory(60_000) == 15_000  # the records the failed batch spanned, not the cap
    assert batch.for_query(300.0) == 15_000  # the sizes of the last batches (small ones) do not lift it
    assert batch.out_of_memory(None) == 3_750  # not known (the first batch): the cap's
    limits = [batch.out_of_memory(batch.for_query(300.0)) for _ in range(8)]
    assert limits == [937, 234, 58, 14, 3, 1, 1, 1]
    assert not batch.can_shrink


def test_the_first_batch_that_fits_turns_the_limit_into_a_budget_of_bytes() -> None:
    """The limit that fit 20-KB records is a budget for the driver: records of 1 KiB again get a cap of that
    budget's size (not the limit's, which would leave a job that keeps up behind for good), 20-KB ones the limit."""
    batch = caps()
    batch.for_query(300.0)
    batch.out_of_memory(60_000)
    batch.out_of_memory(batch.for_query(300.0))  # 15,000 did not fit either: 3,750
    assert batch.for_query(300.0) == 3_750
    assert batch.restart_with(1_024.0) is None  # before one fits: never larger
    batch.committed(3_000, 3_000 * 20_000)  # it fit (a batch a little short of the cap): 3,750 x 20 KB
    assert (batch.limit, batch.budget) == (None, 75_000_000)
    assert batch.restart_with(20_000.0) is None  # the same records: the same cap
    assert batch.restart_with(1_024.0) == 73_242  # 1 KiB records again: 19 x larger, within the budget
    assert batch.for_query(1_024.0) == 73_242
    assert batch.restart_with(20_000.0) == 3_750  # 20-KB records again: the budget holds them to the limit
    batch.committed(10, 400)  # no limit: a batch that commits changes nothing
    assert batch.budget == 75_000_000


def test_the_budget_is_never_wider_than_max_batch_bytes() -> None:
    batch = caps()
    batch.for_query(300.0)
    batch.out_of_memory(60_000)  # 15,000
    batch.for_query(300.0)
    batch.committed(15_000, 15_000 * 40_000)  # 600 MB fit: more than the setting allows anyway
    assert batch.budget == 128 * MIB


def test_under_a_limit_the_query_restarts_only_for_a_smaller_cap() -> None:
    batch = caps()
    batch.for_query(300.0)
    batch.out_of_memory(60_000)
    batch.for_query(300.0)  # 15,000
    assert batch.restart_with(100.0) is None  # larger: not before a batch fit
    assert batch.restart_with(40_000.0) == 3_355  # 128 MiB of 40-KB records: 4 x smaller or more
    assert batch.for_query(40_000.0) == 3_355


def test_record_sizes_that_move_the_cap_4x_either_way_restart_the_query_and_less_does_not() -> None:
    batch = caps()
    assert batch.for_query(1_000.0) == 134_217
    assert batch.restart_with(2_000.0) is None  # 2 x: not worth a restart
    assert batch.restart_with(4_000.0) == 33_554  # 4 x smaller
    assert batch.for_query(4_000.0) == 33_554
    assert batch.restart_with(2_000.0) is None
    assert batch.restart_with(300.0) == 200_000  # 6 x larger (capped by records)
