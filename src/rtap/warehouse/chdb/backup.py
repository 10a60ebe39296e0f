"""A chDB data directory copied, or replaced by a copy, while no process has it open.

Why a copy of the files and not ClickHouse's ``BACKUP``/``RESTORE`` (which chDB runs, given
``backups.allowed_path`` in a configuration file): ``RESTORE`` creates the tables anew, without their
deduplication logs, and the stream job relies on those. A batch the job had begun writing when it stopped is
written again under the same ``insert_deduplication_token`` when it runs again; against a restored table the
token is unknown, the block is stored twice, and the windows' partial states count it twice (measured on
chDB 4.4: an insert repeated with its token after ``RESTORE`` adds its rows again; the check is
tests/unit/ops/test_backup_tokens.py). A copy of a closed directory holds the logs with the rows: restoring it
is, to the job, the same as a crash at the moment of the backup, which the kill -9 tests show to be exact.

Closed means: this process holds the directory's lock (rtap.warehouse.chdb.ownership) for the whole copy, so
``rtap up``, ``rtap stream`` and ``rtap migrate`` cannot open it meanwhile, and a copy is refused while one of
them holds it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rtap.errors import ConfigError, RetryableWarehouseError
from rtap.warehouse import sql as sqltext
from rtap.warehouse.chdb.errors import translate
from rtap.warehouse.chdb.ownership import LOCK_FILE, owner_pid, try_acquire


@dataclass(frozen=True)
class WarehouseFacts:
    """What a backup records about the warehouse it copied."""

    migration: int  # the last migration applied (0: none)
    last_batch: int | None  # the last batch of one pipeline in pipeline_batches (None: none)


class ClosedWarehouse:
    """A chDB directory this process holds the lock of: read a few facts, copy it, or replace its files."""

    def __init__(self, directory: Path, database: str) -> None:
        self.directory = directory
        self.database = sqltext.check_identifier(database, "database")

    def facts(self, pipeline_id: str | None) -> WarehouseFacts:
        """The database's last migration, and the last batch ``pipeline_id`` committed in it."""
        if "?" in str(self.directory):
            raise ConfigError(f"the chDB data directory may not contain '?': {self.directory}")
        from chdb import connect

        try:
            connection = connect(str(self.directory))  # type: ignore[no-untyped-call]
        except RuntimeError as exc:
            raise translate(exc) from exc
        try:
            migration = self._run(connection, f"SELECT max(version) FROM {self.database}.schema_migrations FINAL")
            last = None
            if pipeline_id is not None:
                count, batch = self._run(
                    connection,
                    f"SELECT count(), max(batch_id) FROM {self.database}.pipeline_batches FINAL "
                    "WHERE query_id = {pipeline:String}",
                    {"pipeline": pipeline_id},
                ).split()
                last = int(batch) if int(count) else None
        finally:
            connection.close()
        return WarehouseFacts(migration=int(migration or 0), last_batch=last)

    @staticmethod
    def _run(connection: object, sql: str, params: dict[str, str] | None = None) -> str:
        try:
            return str(connection.query(sql, "TabSeparated", params=params or {})).strip()  # type: ignore[attr-defined]
        except RuntimeError as exc:
            raise translate(exc, sql) from exc

    def copy_to(self, target: Path) -> None:
        """Copy every file of the directory but the lock to ``target`` (a new folder)."""
        shutil.copytree(self.directory, target, symlinks=True, ignore=_lock_file)

    def replace_from(self, source: Path) -> None:
        """Make the directory's files those of ``source`` (a copy made by :meth:`copy_to`); the lock file stays,
        so that the lock this process holds keeps the directory closed until the end."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for entry in self.directory.iterdir():
            if entry.name == LOCK_FILE:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        shutil.copytree(source, self.directory, symlinks=True, ignore=_lock_file, dirs_exist_ok=True)


def _lock_file(folder: str, names: list[str]) -> list[str]:
    return [LOCK_FILE] if LOCK_FILE in names else []


@contextmanager
def closed_warehouse(directory: Path, database: str, action: str) -> Iterator[ClosedWarehouse]:
    """Hold ``directory``'s lock until the block ends; refused in one line while another process holds it
    (``action`` says what was refused)."""
    ownership = try_acquire(directory)
    if ownership is None:
        raise RetryableWarehouseError(
            f"cannot {action}: the chDB data directory {directory} is in use by rtap process "
            f"{owner_pid(directory)} (rtap up or rtap stream); stop it first"
        )
    try:
        yield ClosedWarehouse(directory, database)
    finally:
        ownership.release()


__all__ = ["ClosedWarehouse", "WarehouseFacts", "closed_warehouse"]
