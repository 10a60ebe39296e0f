"""Versioned schema migrations: ``migrations/NNNN_name.sql``, applied once each, in order.

Each applied file is recorded in ``{db}.schema_migrations`` with a checksum of its statements
(comments excluded, so a comment fix does not count as a change). Re-running applies only new files;
a recorded file whose statements changed is an error: schemas move forward with new files, never by
editing applied ones. The ledger table is created before the first file runs because it lives in
``{db}`` and must exist to record ``0001``, which creates that database.

Each statement runs as the client's :class:`~rtap.warehouse.schema.Schema` renders it (ON CLUSTER and
Replicated engines on a cluster; the checksum is of the file's text, the same in both modes), and every run
ends by setting each table's retention from the settings (:func:`apply_retention`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable

from rtap.errors import WarehouseError
from rtap.warehouse import sql as sqltext
from rtap.warehouse.client import WarehouseClient
from rtap.warehouse.schema import RETENTION, ttl_differs
from rtap.warehouse.sql import split_statements

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

LEDGER_DDL = (
    "CREATE DATABASE IF NOT EXISTS {db}",
    """CREATE TABLE IF NOT EXISTS {db}.schema_migrations
    (
        version    UInt32,
        name       String,
        checksum   String,
        applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
    )
    ENGINE = ReplacingMergeTree
    ORDER BY version""",
)


APPLIED = "SELECT version, name, checksum FROM {db}.schema_migrations FINAL ORDER BY version"


class MigrationError(WarehouseError):
    """The migration files and the database's record of them disagree."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]

    @property
    def checksum(self) -> str:
        """SHA-256 of the statements as written (before ``{db}`` is rendered)."""
        return hashlib.sha256(";\n".join(self.statements).encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


def load_migrations(directory: Traversable | None = None) -> list[Migration]:
    """The migration files in ``directory`` (default: the packaged ones), sorted by version."""
    folder = directory or resources.files("rtap.warehouse") / "migrations"
    migrations: dict[int, Migration] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if not match:
            raise MigrationError(f"migration file {entry.name} is not named NNNN_lower_case_name.sql")
        version = int(match.group(1))
        if version in migrations:
            raise MigrationError(f"two migration files have version {version:04d}")
        statements = tuple(split_statements(entry.read_text(encoding="utf-8")))
        if not statements:
            raise MigrationError(f"migration file {entry.name} has no statements")
        migrations[version] = Migration(version, match.group(2), statements)
    return [migrations[v] for v in sorted(migrations)]


def applied_migrations(client: WarehouseClient) -> dict[int, tuple[str, str]]:
    """Version -> (name, checksum) as recorded in ``{db}.schema_migrations``."""
    rows = client.query_rows(APPLIED)
    return {int(version): (str(name), str(checksum)) for version, name, checksum in rows}


def apply_migrations(client: WarehouseClient, directory: Traversable | None = None) -> list[Migration]:
    """Apply every migration not yet recorded, in order; return those applied now (empty if up to date).

    Statements are idempotent DDL (``IF NOT EXISTS``), so a run interrupted half-way through a file
    simply repeats that file next time; a file is recorded only after all its statements succeeded.
    """
    migrations = load_migrations(directory)
    check_cluster(client)
    for ddl in LEDGER_DDL:
        client.command(client.schema.render(ddl))
    recorded = applied_migrations(client)
    known = {m.version: m for m in migrations}
    unknown = sorted(set(recorded) - set(known))
    if unknown:
        raise MigrationError(
            f"database {client.database} has migration(s) {', '.join(f'{v:04d}' for v in unknown)} "
            "that this rtap does not ship; it was migrated by a newer version"
        )
    for version, (name, checksum) in recorded.items():
        if checksum != known[version].checksum:
            raise MigrationError(
                f"migration {known[version].label} changed after it was applied to {client.database} "
                f"(recorded as {version:04d}_{name}, checksum {checksum[:12]}, now "
                f"{known[version].checksum[:12]}); add a new migration file instead of editing an applied one"
            )
    applied: list[Migration] = []
    for migration in migrations:
        if migration.version in recorded:
            continue
        for number, statement in enumerate(migration.statements, start=1):
            try:
                client.command(client.schema.render(statement))
            except WarehouseError as exc:
                raise type(exc)(
                    f"migration {migration.label}, statement {number}: {exc}", code=exc.code, query=exc.query
                ) from exc
        _record(client, migration)
        applied.append(migration)
    apply_retention(client)
    return applied


# The shards of the cluster migrations target; a macro such as {cluster} is read from the server's macros.
CLUSTER_SHARDS = """
SELECT count(DISTINCT shard_num) FROM system.clusters WHERE cluster = {cluster:String}
"""
MACRO = "SELECT getMacro({name:String})"


def check_cluster(client: WarehouseClient) -> None:
    """In cluster mode, the cluster must exist and have one shard (rtap.warehouse.schema says why)."""
    cluster = client.schema.cluster
    if not cluster:
        return
    name = cluster
    if cluster.startswith("{") and cluster.endswith("}"):
        ((name,),) = client.query_rows(MACRO, parameters={"name": cluster[1:-1]})
    ((shards,),) = client.query_rows(CLUSTER_SHARDS, parameters={"cluster": name})
    if shards == 0:
        raise MigrationError(f"the server knows no cluster {name} (system.clusters): check RTAP_CLICKHOUSE_CLUSTER")
    if shards > 1:
        raise MigrationError(
            f"cluster {name} has {shards} shards; rtap runs on one shard of replicas (docs/clickhouse-server.md)"
        )


# Every table with a retention setting, as system.tables describes its engine (TTL included).
TABLE_ENGINES = """
SELECT name, engine_full FROM system.tables WHERE database = {database:String} AND has({tables:Array(String)}, name)
"""


def apply_retention(client: WarehouseClient) -> list[str]:
    """Give each table the TTL its retention setting asks for, where it differs; the statements run.

    An ``ALTER TABLE ... MODIFY TTL`` makes ClickHouse drop the rows past the new TTL in the background
    (``materialize_ttl_after_modify``), so a shorter retention frees disk without a restart; a longer one
    cannot bring back rows already dropped.
    """
    tables = list(RETENTION)
    rows = client.query_rows(TABLE_ENGINES, parameters={"database": client.database, "tables": tables})
    engines = {str(name): str(engine) for name, engine in rows}
    statements: list[str] = []
    for ttl in client.schema.retention:
        engine = engines.get(sqltext.check_identifier(ttl.table, "table name"))
        if engine is None or not ttl_differs(ttl, engine):
            continue
        statement = client.schema.ttl_statement(ttl)
        client.command(statement)
        statements.append(client.render(statement))
    return statements


def _record(client: WarehouseClient, migration: Migration) -> None:
    import pyarrow as pa

    row = pa.table(
        {
            "version": pa.array([migration.version], pa.uint32()),
            "name": [migration.name],
            "checksum": [migration.checksum],
        }
    )
    client.insert_arrow("schema_migrations", row)
