"""Driver errors become rtap errors at the boundary, keeping ClickHouse's code."""

from __future__ import annotations

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError, ProgrammingError

from rtap.errors import QueryRejectedError, RetryableWarehouseError, WarehouseError
from rtap.settings import WarehouseSettings
from rtap.warehouse.errors import code_from_message, one_line, warehouse_error
from rtap.warehouse.server import errors as server_errors
from rtap.warehouse.server.client import ServerClient
from tests.support.paths import free_port

CHDB_READONLY = (
    "Code: 164. DB::Exception: Code: 164. DB::Exception: Cannot modify 'readonly' setting in readonly mode. "
    "(READONLY) (version 26.9.2.1). (READONLY)"
)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (164, QueryRejectedError),
        (497, QueryRejectedError),
        (159, RetryableWarehouseError),
        (209, RetryableWarehouseError),
        (242, RetryableWarehouseError),
        (252, RetryableWarehouseError),
        (286, RetryableWarehouseError),  # a quorum insert still under way
        (289, RetryableWarehouseError),  # a sequentially consistent read on a replica still catching up
        (60, WarehouseError),
        (None, WarehouseError),
    ],
)
def test_codes_pick_the_error_class(code: int | None, kind: type[WarehouseError]) -> None:
    error = warehouse_error(f"Code: {code}. something", code=code, query="SELECT 1")
    assert type(error) is kind
    assert error.code == code
    assert error.query == "SELECT 1"
    assert error.retryable is (kind is RetryableWarehouseError)


def test_messages_become_one_clean_line() -> None:
    assert code_from_message(CHDB_READONLY) == 164
    assert one_line(CHDB_READONLY + "\n  trailing") == (
        "Code: 164. DB::Exception: Cannot modify 'readonly' setting in readonly mode. (READONLY). (READONLY) trailing"
    )


@pytest.mark.parametrize(
    ("exc", "kind", "code"),
    [
        (
            DatabaseError("Code: 252. DB::Exception: Too many parts (TOO_MANY_PARTS)", code=252),
            RetryableWarehouseError,
            252,
        ),
        (DatabaseError("Code: 242. Table is in readonly mode (TABLE_IS_READ_ONLY)"), RetryableWarehouseError, 242),
        (
            DatabaseError("Code: 164. DB::Exception: rtap_reader: Cannot execute query in readonly mode", code=164),
            QueryRejectedError,
            164,
        ),
        (ProgrammingError("Code: 62. Syntax error (SYNTAX_ERROR)", code=62), WarehouseError, 62),
        (OperationalError("Network Error: connection reset"), RetryableWarehouseError, None),
    ],
)
def test_clickhouse_connect_errors_are_translated(exc: Exception, kind: type[WarehouseError], code: int | None) -> None:
    assert isinstance(exc, DatabaseError | OperationalError | ProgrammingError)
    error = server_errors.translate(exc, "SELECT 1")
    assert type(error) is kind
    assert error.code == code


def test_an_unreachable_server_is_a_retryable_error() -> None:
    """A real connection attempt to a loopback port nobody listens on (nothing is faked)."""
    settings = WarehouseSettings(backend="server", host="127.0.0.1", port=free_port(), connect_timeout_s=2)
    with pytest.raises(RetryableWarehouseError, match=r"ClickHouse server 127\.0\.0\.1:\d+: connection failed"):
        ServerClient(settings, readonly=False)
