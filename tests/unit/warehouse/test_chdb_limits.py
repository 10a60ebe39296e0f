"""Every read on chDB runs under the reader's limits (time, memory, result size, threads), enforced by the engine's
read-only connection; a read-only client may tighten them per query, never lift them, and refuses what reaches outside
the warehouse (files, URLs, processes, other servers) before the engine sees it."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rtap.errors import QueryRejectedError, RetryableWarehouseError, WarehouseError
from rtap.settings import Settings, WarehouseSettings
from rtap.warehouse import WarehouseClient, create_client
from tests.unit.warehouse.conftest import make_settings

LIMIT_S = 1.0
MEMORY = 64 * 1024**2
SLOW = "SELECT count() FROM numbers(100000000000)"  # minutes of counting without a limit
GREEDY = "SELECT length(groupArray(number)) FROM numbers(100000000)"  # about 1 GiB
BIG_RESULT = "SELECT number FROM numbers(20000000)"  # 160 MB of result


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = make_settings(tmp_path_factory.mktemp("chdb-limits"))
    warehouse = WarehouseSettings(
        backend="chdb",
        database=settings.warehouse.database,
        read_max_execution_time_s=LIMIT_S,
        read_max_memory_bytes=MEMORY,
    )
    return settings.model_copy(update={"warehouse": warehouse})


@pytest.fixture(scope="module")
def writer(limited: Settings) -> Iterator[WarehouseClient]:
    with create_client(limited) as client:
        yield client


@pytest.fixture(scope="module")
def reader(limited: Settings, writer: WarehouseClient) -> Iterator[WarehouseClient]:
    with create_client(limited, readonly=True) as client:
        yield client


def test_a_read_is_stopped_at_the_time_limit(reader: WarehouseClient) -> None:
    began = time.monotonic()
    with pytest.raises(RetryableWarehouseError) as stopped:
        reader.query_rows(SLOW)
    assert stopped.value.code == 159  # TIMEOUT_EXCEEDED
    assert time.monotonic() - began < 5 * LIMIT_S


def test_a_read_is_stopped_at_the_memory_limit(reader: WarehouseClient) -> None:
    with pytest.raises(RetryableWarehouseError) as stopped:
        reader.query_rows(GREEDY)
    assert stopped.value.code == 241  # MEMORY_LIMIT_EXCEEDED


def test_a_result_larger_than_the_limit_is_refused(reader: WarehouseClient) -> None:
    with pytest.raises(WarehouseError) as refused:
        reader.query_arrow(BIG_RESULT)
    assert refused.value.code == 396  # TOO_MANY_ROWS_OR_BYTES


def test_a_read_runs_on_the_readers_threads_only(reader: WarehouseClient, writer: WarehouseClient) -> None:
    """RTAP_CLICKHOUSE_READ_MAX_THREADS (1): a panel query never takes every core from the job's writes."""
    assert reader.query_rows("SELECT getSetting('max_threads')") == [(1,)]
    assert writer.query_text("SELECT getSetting('max_threads')", default_format="TabSeparated").strip() == b"1"


def test_text_queries_of_a_writing_client_have_the_reader_limits(writer: WarehouseClient) -> None:
    """``rtap sql`` in the process that owns the warehouse: its text queries read through the limited connection."""
    with pytest.raises(RetryableWarehouseError) as stopped:
        writer.query_text(SLOW)
    assert stopped.value.code == 159


def test_a_query_may_tighten_the_limits_but_not_lift_them(reader: WarehouseClient) -> None:
    began = time.monotonic()
    with pytest.raises(RetryableWarehouseError):
        reader.query_arrow(SLOW, settings={"max_execution_time": 0.2})
    assert time.monotonic() - began < LIMIT_S
    assert reader.query_rows("SELECT 1") == [(1,)]
    for lifted in ({"max_execution_time": 0}, {"max_execution_time": 2 * LIMIT_S}, {"max_memory_usage": 2 * MEMORY}):
        with pytest.raises(QueryRejectedError, match="limit"):
            reader.query_arrow("SELECT 1", settings=lifted)
    with pytest.raises(QueryRejectedError, match="max_threads"):
        reader.query_arrow("SELECT 1", settings={"max_threads": 64})


@pytest.mark.parametrize(
    "statement",
    [
        SLOW + " SETTINGS max_execution_time = 0",
        "SELECT * FROM file('/etc/hostname', 'LineAsString')",
        "SELECT file('/etc/hostname')",
        "SELECT * FROM url('http://127.0.0.1:9/x', 'CSV', 'x String')",
        "SELECT * FROM filesystem('/')",
        "SELECT 1 INTO OUTFILE '/tmp/rtap-must-not-exist'",
    ],
)
def test_reads_that_reach_outside_are_refused_before_the_engine(
    reader: WarehouseClient, writer: WarehouseClient, statement: str
) -> None:
    with pytest.raises(QueryRejectedError):
        reader.query_rows(statement)
    with pytest.raises(QueryRejectedError):
        writer.query_text(statement)


def _can_renice() -> bool:
    """Whether this process has CAP_SYS_NICE, without which ClickHouse leaves thread priorities alone."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> 23 & 1)
    return False


def _nice_values() -> dict[int, int]:
    """This process's threads and their nice values (/proc/self/task/*/stat, field 19)."""
    values = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        values[int(task.name)] = int(stat[stat.rindex(")") + 2 :].split()[16])
    return values


def _nice_while(query: Callable[[], object]) -> set[int]:
    """The nice values this process's threads took on while ``query`` ran (in another thread)."""
    before = _nice_values()
    seen: set[int] = set()
    done = threading.Event()

    def run() -> None:
        try:
            query()
        finally:
            done.set()

    thread = threading.Thread(target=run)
    thread.start()
    while not done.wait(0.02):
        seen.update(nice for tid, nice in _nice_values().items() if before.get(tid) != nice)
    thread.join()
    return seen


@pytest.mark.skipif(not _can_renice(), reason="ClickHouse sets thread priorities only with CAP_SYS_NICE")
def test_a_read_runs_at_the_readers_nice_value_and_the_jobs_writes_do_not(
    reader: WarehouseClient, writer: WarehouseClient
) -> None:
    """RTAP_CLICKHOUSE_READ_NICE (10): while a read runs its threads have that nice value, and after it none has;
    the job's session runs at the process's own; a read cannot send another."""
    own = os.getpriority(os.PRIO_PROCESS, 0)
    assert 10 in _nice_while(lambda: reader.query_rows("SELECT sleepEachRow(0.25) FROM numbers(4)"))
    assert 10 not in _nice_values().values()
    assert os.getpriority(os.PRIO_PROCESS, 0) == own
    assert 10 not in _nice_while(lambda: writer.query_rows("SELECT sleepEachRow(0.25) FROM numbers(4)"))
    with pytest.raises(QueryRejectedError, match="os_threads_nice_value_query"):
        reader.query_arrow("SELECT 1", settings={"os_threads_nice_value_query": 0})
