"""chDB exceptions -> rtap errors. chDB raises RuntimeError (ChdbError) whose text starts ``Code: N.``."""

from __future__ import annotations

from rtap.errors import WarehouseError
from rtap.warehouse.errors import code_from_message, warehouse_error

# chDB raises this when the data directory is locked by another engine (another process).
CANNOT_OPEN_FILE = 76
# ... and this when the process already runs an engine on another directory.
BAD_ARGUMENTS = 36


def translate(exc: Exception, query: str | None = None) -> WarehouseError:
    """The rtap error for a chDB failure, keeping ClickHouse's code."""
    message = str(exc)
    return warehouse_error(f"chDB: {message}", code=code_from_message(message), query=query)
