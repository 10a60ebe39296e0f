"""clickhouse-connect exceptions -> rtap errors.

The driver puts the server's error code on ``exc.code`` (from the X-ClickHouse-Exception-Code
header) when there is one; transport failures (refused connection, reset, timeout) come as
``OperationalError`` without a code and are worth retrying.
"""

from __future__ import annotations

from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError

from rtap.errors import RetryableWarehouseError, WarehouseError
from rtap.warehouse.errors import code_from_message, one_line, warehouse_error


def translate(exc: ClickHouseError, query: str | None = None, *, where: str = "ClickHouse server") -> WarehouseError:
    """The rtap error for a clickhouse-connect failure, keeping ClickHouse's code."""
    message = str(exc)
    code = getattr(exc, "code", None)
    if not isinstance(code, int):
        code = code_from_message(message)
    if code is None and isinstance(exc, OperationalError):
        return RetryableWarehouseError(f"{where}: connection failed: {one_line(message)}", query=query)
    return warehouse_error(f"{where}: {message}", code=code, query=query)
