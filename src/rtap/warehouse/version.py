"""The oldest ClickHouse server rtap runs on, and the check a server client makes when it connects.

Why 24.7: exactly-once in the stream sink leans on how materialized views deduplicate a retried insert
(rtap.stream.sink, migration 0008). Since 24.7 (ClickHouse PR #61601) an insert whose block the source table
drops as a duplicate still flows through every dependent view, and with
``deduplicate_blocks_in_dependent_materialized_views = 1`` each view's target table deduplicates its own block by
a token derived from the insert's ``insert_deduplication_token``. So a retry after a failure half way (``events``
stored, one ``*_state`` block not) writes the missing view block and nothing else. Before 24.7 a block the source
table dropped never reached the views: that retry would leave the state table short for good, and a window's
count wrong. ``update_insert_deduplication_token_in_dependent_materialized_views`` (24.2), a stop-gap before
that rework, is not set: from 24.7 the engine derives each view's token itself (issue #60008, PR #61601).

chDB embeds the engine it was built from (chdb-core 26.9: ClickHouse 26.9), well above the floor; the tests
that prove the behaviour run on it (tests/unit/stream/test_sink.py).
"""

from __future__ import annotations

import re

from rtap.errors import ServerVersionError

MIN_SERVER_VERSION = (24, 7)
"""The oldest ClickHouse (major, minor) rtap supports; see the module docstring for the reason."""

_VERSION = re.compile(r"^\s*(\d+)\.(\d+)(?:\.\d+)*")


def parse_version(version: str) -> tuple[int, int]:
    """(major, minor) of a ``SELECT version()`` answer such as ``24.8.4.13`` or ``25.3.1.2703-lts``."""
    match = _VERSION.match(version)
    if match is None:
        raise ServerVersionError(f"cannot read a ClickHouse version from {version!r}")
    return int(match.group(1)), int(match.group(2))


def check_server_version(version: str, *, where: str) -> None:
    """Refuse a server older than :data:`MIN_SERVER_VERSION` with one line naming it and the floor."""
    if parse_version(version) < MIN_SERVER_VERSION:
        floor = ".".join(map(str, MIN_SERVER_VERSION))
        raise ServerVersionError(
            f"{where} runs ClickHouse {version}; rtap needs {floor} or later (materialized views deduplicate a "
            f"retried insert per view only since {floor}: docs/clickhouse-server.md)"
        )
