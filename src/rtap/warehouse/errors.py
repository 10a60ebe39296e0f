"""ClickHouse error codes -> rtap's warehouse errors, shared by every backend.

Both backends end up with a ClickHouse error code (chDB in its message, the server in a header) and
hand it to :func:`warehouse_error`, so "retryable" means the same whichever engine answered. The
codes were read from the engine itself (``errorCodeToName``).
"""

from __future__ import annotations

import re

from rtap.errors import QueryRejectedError, RetryableWarehouseError, WarehouseError

READONLY = 164
ACCESS_DENIED = 497

# Failures that say nothing about the statement itself: the same statement may pass a moment later.
RETRYABLE_CODES = frozenset(
    {
        159,  # TIMEOUT_EXCEEDED
        160,  # TOO_SLOW
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY
        252,  # TOO_MANY_PARTS
        279,  # ALL_CONNECTION_TRIES_FAILED
        285,  # TOO_FEW_LIVE_REPLICAS
        286,  # UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE: a quorum insert still under way (insert_quorum_parallel=0)
        289,  # REPLICA_IS_NOT_IN_QUORUM: a sequentially consistent read reached a replica still catching up
        319,  # UNKNOWN_STATUS_OF_INSERT
        439,  # CANNOT_SCHEDULE_TASK
        745,  # SERVER_OVERLOADED
        999,  # KEEPER_EXCEPTION
    }
)
# Refused by design: a write on a read-only path, or a user without the grant.
REJECTED_CODES = frozenset({READONLY, ACCESS_DENIED})

_CODE = re.compile(r"\bCode:\s*(\d+)")
_VERSION_TRAILER = re.compile(r"\s*\(version [^()]*(\([^()]*\))?[^()]*\)")
_DUPLICATE_PREFIX = re.compile(r"(Code: \d+\. DB::Exception: )+")


def code_from_message(message: str) -> int | None:
    """The first ``Code: N`` in a ClickHouse error message."""
    match = _CODE.search(message)
    return int(match.group(1)) if match else None


def one_line(message: str) -> str:
    """A ClickHouse message as one readable line: no version trailer, no repeated code prefix."""
    text = _VERSION_TRAILER.sub("", message)
    text = _DUPLICATE_PREFIX.sub(lambda m: m.group(0)[: m.group(0).index("DB::Exception: ") + 15], text)
    return " ".join(text.split())


def warehouse_error(message: str, *, code: int | None, query: str | None = None) -> WarehouseError:
    """The rtap error for a ClickHouse failure with ``code`` (None when the engine gave none)."""
    text = one_line(message)
    if code in REJECTED_CODES:
        return QueryRejectedError(text, code=code, query=query)
    if code in RETRYABLE_CODES:
        return RetryableWarehouseError(text, code=code, query=query)
    return WarehouseError(text, code=code, query=query)
