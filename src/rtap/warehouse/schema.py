"""How the migration files become DDL for the target: one server, or a cluster; and each table's retention.

The migration files (``migrations/*.sql``) are written once, for one server. :class:`Schema` renders each
statement for where it runs, at run time, so the files and their checksums are the same in both modes:

- one server (``cluster`` empty, chDB always): the statement as written;
- a cluster (``RTAP_CLICKHOUSE_CLUSTER``): ``ON CLUSTER '<name>'`` after the object of every ``CREATE DATABASE``,
  ``CREATE TABLE``, ``CREATE [MATERIALIZED] VIEW`` and ``ALTER TABLE``, and every ``*MergeTree`` engine made its
  ``Replicated*MergeTree`` at ``replica_path`` / ``replica_name`` (the engine's arguments kept after them), and a
  table's ``non_replicated_deduplication_window`` becomes ``replicated_deduplication_window`` (the same window, so a
  retried insert is dropped on either engine). ``INSERT`` and ``SELECT`` run once, on the replica that gets them:
  replication copies what they write. Any other DDL is refused in cluster mode rather than run on one node.

Why no Distributed table: rtap's cluster is one shard of N replicas. Every replica holds every row, so the stream
job writes to and reads from the local replicated tables on whichever replica it reaches, and a reader's FINAL is
exact there. Sharding would need Distributed tables, and then the insert deduplication tokens and FINAL work per
shard only: exactness would depend on a sharding key the sink does not control. migrate refuses a cluster of more
than one shard (rtap.warehouse.migrate).

Retention: the tables whose rows expire (:data:`RETENTION`) get their TTL from the settings at every migrate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rtap.errors import WarehouseError
from rtap.settings import WarehouseSettings
from rtap.warehouse import sql as sqltext

if TYPE_CHECKING:
    from collections.abc import Mapping

# The DDL that names one object: ON CLUSTER goes right after that name.
_DDL_HEAD = re.compile(
    r"^(?:CREATE\s+(?:DATABASE|TABLE|VIEW|MATERIALIZED\s+VIEW)\s+IF\s+NOT\s+EXISTS|ALTER\s+TABLE)\s+[A-Za-z0-9_{}.]+",
    re.IGNORECASE,
)
_DDL_KEYWORDS = frozenset({"CREATE", "ALTER", "DROP", "RENAME", "TRUNCATE", "EXCHANGE", "ATTACH", "DETACH"})
_ENGINE = re.compile(
    r"\bENGINE\s*=\s*(Replacing|Aggregating|Summing|Collapsing|VersionedCollapsing|)MergeTree\b(\(\s*([^()]*?)\s*\))?"
)
_CREATE_TABLE = re.compile(r"^CREATE\s+TABLE\b", re.IGNORECASE)
_DEDUP_WINDOW = re.compile(r"\bnon_replicated_deduplication_window\b")


def _default(name: str) -> int:
    value = WarehouseSettings.model_fields[name].default
    assert isinstance(value, int)
    return value


@dataclass(frozen=True)
class TableTTL:
    """One table's retention: rows expire ``days`` after ``column`` (0: never)."""

    table: str
    column: str
    days: int

    def clause(self) -> str | None:
        """The TTL expression, or None for no TTL. It counts from ingestion, never from event time (migration
        0002 says why): a replayed or historical event must not expire as it is inserted."""
        return f"toDateTime({self.column}) + INTERVAL {self.days} DAY" if self.days else None


# Table -> (the column its TTL counts from, the setting that holds its days).
RETENTION: Mapping[str, tuple[str, str]] = {
    "events": ("ingested_at", "retention_events_days"),
    # The duplicate lookup (migration 0010) keeps the ids as long as events keeps the events.
    "event_ids": ("ingested_at", "retention_events_days"),
    # The write-ahead record of events' blocks (migration 0012) lives as long as the blocks it describes.
    "event_blocks": ("written_at", "retention_events_days"),
    # A row per session, and per active user and client address a minute, summarising their events (migration
    # 0014): kept as long as the events are.
    "sessions": ("ingested_at", "retention_events_days"),
    "activity_1m_state": ("ingested_at", "retention_events_days"),
    "late_events": ("ingested_at", "retention_late_events_days"),
    "dead_letters": ("received_at", "retention_dead_letters_days"),
    "pipeline_batches": ("started_at", "retention_pipeline_batches_days"),
}


def _retention(days: Mapping[str, int]) -> tuple[TableTTL, ...]:
    return tuple(TableTTL(table, column, days[setting]) for table, (column, setting) in RETENTION.items())


def _default_retention() -> tuple[TableTTL, ...]:
    return _retention({setting: _default(setting) for _, setting in RETENTION.values()})


@dataclass(frozen=True)
class Schema:
    """Where the DDL runs (``cluster``: empty for one server) and how long each table keeps its rows."""

    cluster: str = ""
    replica_path: str = "/clickhouse/tables/{shard}/{database}/{table}"
    replica_name: str = "{replica}"
    retention: tuple[TableTTL, ...] = field(default_factory=_default_retention)

    @classmethod
    def from_settings(cls, settings: WarehouseSettings) -> Schema:
        days = {setting: int(getattr(settings, setting)) for _, setting in RETENTION.values()}
        return cls(
            cluster=settings.cluster if settings.backend == "server" else "",
            replica_path=settings.replica_path,
            replica_name=settings.replica_name,
            retention=_retention(days),
        )

    def render(self, statement: str) -> str:
        """``statement`` as it runs here: unchanged on one server, ON CLUSTER and Replicated on a cluster."""
        if not self.cluster:
            return statement
        head = _DDL_HEAD.match(statement)
        if head is None:
            if sqltext.leading_keyword(statement) in _DDL_KEYWORDS:
                raise WarehouseError(
                    f"cannot run this DDL on cluster {self.cluster} (rtap renders CREATE ... IF NOT EXISTS and "
                    f"ALTER TABLE only): {' '.join(statement.split())[:80]}"
                )
            return statement
        rendered = f"{head.group(0)} ON CLUSTER {sqltext.quote_string(self.cluster)}{statement[head.end() :]}"
        engines = 0

        def replicated(match: re.Match[str]) -> str:
            nonlocal engines
            engines += 1
            arguments = [sqltext.quote_string(self.replica_path), sqltext.quote_string(self.replica_name)]
            if match.group(3):
                arguments.append(match.group(3))
            return f"ENGINE = Replicated{match.group(1)}MergeTree({', '.join(arguments)})"

        parts: list[str] = []
        for segment in sqltext.segments(rendered):
            text = segment.text
            if segment.kind == "code":
                text = _DEDUP_WINDOW.sub("replicated_deduplication_window", _ENGINE.sub(replicated, text))
            parts.append(text)
        if _CREATE_TABLE.match(statement) and engines != 1:
            raise WarehouseError(
                f"cannot replicate this table on cluster {self.cluster}: rtap replicates exactly one *MergeTree "
                f"engine per CREATE TABLE: {' '.join(statement.split())[:80]}"
            )
        return "".join(parts)

    def ttl_statement(self, ttl: TableTTL) -> str:
        """The ALTER that gives ``{db}.<table>`` the retention ``ttl`` (rendered for the cluster)."""
        clause = ttl.clause()
        change = f"MODIFY TTL {clause}" if clause else "REMOVE TTL"
        return self.render(f"ALTER TABLE {{db}}.{sqltext.check_identifier(ttl.table, 'table name')} {change}")


_TTL = re.compile(
    r"\bTTL\s+toDateTime\((\w+)\)\s*\+\s*(?:toIntervalDay\((\d+)\)|INTERVAL\s+(\d+)\s+DAY)\s*(?:SETTINGS\b|$)",
)
_ANY_TTL = re.compile(r"\bTTL\b")


def current_ttl(engine_full: str) -> tuple[str, int] | str | None:
    """A table's TTL as system.tables' ``engine_full`` shows it: (column, days), None for no TTL, or the text
    after ``TTL`` when it is not one rtap writes (an operator's own; the setting replaces it)."""
    match = _TTL.search(engine_full)
    if match:
        return match.group(1), int(match.group(2) or match.group(3))
    other = _ANY_TTL.search(engine_full)
    return None if other is None else engine_full[other.start() :]


def ttl_differs(ttl: TableTTL, engine_full: str) -> bool:
    """Whether the table's TTL (from ``engine_full``) is not the one ``ttl`` asks for."""
    wanted = (ttl.column, ttl.days) if ttl.days else None
    return current_ttl(engine_full) != wanted
