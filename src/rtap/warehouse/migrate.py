"""Versioned schema migrations: ``migrations/NNNN_name.sql``, applied once each, in order.

Each applied file is recorded in ``{db}.schema_migrations`` with a checksum of its statements
(comments excluded, so a comment fix does not count as a change). Re-running applies only new files;
a recorded file whose statements changed is an error: schemas move forward with new files, never by
editing applied ones. The ledger table is created before the first file runs because it lives in
``{db}`` and must exist to record ``0001``, which creates that database.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable

from rtap.errors import WarehouseError
from rtap.warehouse.client import WarehouseClient
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
    rows = client.query_rows("SELECT version, name, checksum FROM {db}.schema_migrations FINAL ORDER BY version")
    return {int(version): (str(name), str(checksum)) for version, name, checksum in rows}


def apply_migrations(client: WarehouseClient, directory: Traversable | None = None) -> list[Migration]:
    """Apply every migration not yet recorded, in order; return those applied now (empty if up to date).

    Statements are idempotent DDL (``IF NOT EXISTS``), so a run interrupted half-way through a file
    simply repeats that file next time; a file is recorded only after all its statements succeeded.
    """
    migrations = load_migrations(directory)
    for ddl in LEDGER_DDL:
        client.command(ddl)
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
                client.command(statement)
            except WarehouseError as exc:
                raise type(exc)(
                    f"migration {migration.label}, statement {number}: {exc}", code=exc.code, query=exc.query
                ) from exc
        _record(client, migration)
        applied.append(migration)
    return applied


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
