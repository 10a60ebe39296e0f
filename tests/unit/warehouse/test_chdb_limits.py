"""Every read on chDB runs under the reader's limits (time, memory, result size, threads), enforced by the engine's
read-only connection; a read-only client may tighten them per query, never lift them, and refuses what reaches outside
the warehouse (files, URLs, processes, other servers) before the engine sees it."""

from __future__ import annotations

import time
from collections.abc import Iterator

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
        # Hidden in what reads as a string literal to a lexer that does not know ClickHouse's comments: `# ` and
        # `//` start one there, so the engine reads the file() call and the SETTINGS clause (both ran before).
        "SELECT line # '\nFROM file('/etc/hostname', 'LineAsString') -- '",
        "SELECT 1 // '\n, file('/etc/hostname') -- '",
        "SELECT 1 #! '\nSETTINGS max_execution_time = 0 -- '",
        # Nested comments: the engine's comment ends at the second */, a naive one at the first.
        "/* /* */ ' */ SELECT * FROM file('/etc/hostname', 'LineAsString') -- '",
    ],
)
def test_reads_that_reach_outside_are_refused_before_the_engine(
    reader: WarehouseClient, writer: WarehouseClient, statement: str
) -> None:
    with pytest.raises(QueryRejectedError):
        reader.query_rows(statement)
    with pytest.raises(QueryRejectedError):
        writer.query_text(statement)


def test_a_read_is_one_statement_the_engine_can_parse(reader: WarehouseClient) -> None:
    with pytest.raises(QueryRejectedError, match=r"ClickHouse cannot parse it: .*Syntax error"):
        reader.query_rows("SELEC 1")
    # chDB runs every statement of a string: a second one behind a `#` comment's quote is two, as ClickHouse reads it.
    with pytest.raises(WarehouseError, match="2 statements"):
        reader.query_rows("SELECT 1 # '\n; SELECT * FROM file('/etc/hostname', 'LineAsString') -- '")


def test_a_read_is_judged_as_the_engine_reads_it_comments_and_heredocs_included(reader: WarehouseClient) -> None:
    assert reader.query_rows("SELECT 1 # a comment\n, 'file(' AS f // another\n, $$settings x = 1$$ AS s") == [
        (1, "file(", "settings x = 1")
    ]
