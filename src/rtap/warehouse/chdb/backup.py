"""ClickHouse's own BACKUP and RESTORE on a chDB data directory that no process is using.

chDB runs ClickHouse's backup engine, but only with ``backups.allowed_path`` configured, which the engine
reads from a configuration file at start-up: so a backup opens its own engine on the directory, with a
configuration file that allows exactly the one backup folder (measured on chDB 4.4: without it, ``BACKUP ...
TO File(...)`` fails with code 318). That engine needs the directory's lock (rtap.warehouse.chdb.ownership),
so a backup or a restore is refused while ``rtap up`` or ``rtap stream`` owns the directory: an online copy
would not match the checkpoint the running job keeps writing (docs/operating.md).

The backup is ClickHouse's format (checksummed parts and table definitions), the same one
``BACKUP DATABASE rtap TO File(...)`` writes on a ClickHouse server.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from rtap.errors import ConfigError, RetryableWarehouseError
from rtap.warehouse import sql as sqltext
from rtap.warehouse.chdb.errors import translate
from rtap.warehouse.chdb.ownership import owner_pid, try_acquire

# Characters that would end the path inside chDB's connection string ("<dir>?config-file=<file>&...").
_URL_SPECIAL = ("?", "&")


def _check_path(path: Path, what: str) -> None:
    if any(char in str(path) for char in _URL_SPECIAL):
        raise ConfigError(f"the {what} may not contain '?' or '&': {path}")


@contextmanager
def backup_engine(directory: Path, database: str, allowed: Path, action: str) -> Iterator[BackupEngine]:
    """An engine on ``directory`` whose backups may be read and written below ``allowed`` only; it holds the
    directory's lock until the block ends (``action`` names what is refused while another process holds it)."""
    _check_path(directory, "chDB data directory")
    _check_path(allowed, "backup folder")
    ownership = try_acquire(directory)
    if ownership is None:
        raise RetryableWarehouseError(
            f"cannot {action}: the chDB data directory {directory} is in use by rtap process "
            f"{owner_pid(directory)} (rtap up or rtap stream); stop it first"
        )
    try:
        from chdb import connect

        with tempfile.TemporaryDirectory(prefix="rtap-backup-config-") as config_dir:
            config = Path(config_dir) / "config.xml"
            config.write_text(
                f"<clickhouse><backups><allowed_path>{escape(str(allowed))}/</allowed_path></backups></clickhouse>\n"
            )
            try:
                connection = connect(f"{directory}?config-file={config}")  # type: ignore[no-untyped-call]
            except RuntimeError as exc:
                raise translate(exc) from exc
            try:
                yield BackupEngine(connection, database)
            finally:
                connection.close()
    finally:
        ownership.release()


class BackupEngine:
    """A chDB connection that may back up to, and restore from, one folder (see :func:`backup_engine`)."""

    def __init__(self, connection: Any, database: str) -> None:
        self._connection = connection
        self.database = sqltext.check_identifier(database, "database")

    def _run(self, sql: str, params: dict[str, str] | None = None) -> str:
        try:
            return str(self._connection.query(sql, "TabSeparated", params=params or {}))
        except RuntimeError as exc:
            raise translate(exc, sql) from exc

    def facts(self, pipeline_id: str | None) -> WarehouseFacts:
        """The database's last migration and the last batch ``pipeline_id`` committed in it."""
        migration = self._run(f"SELECT max(version) FROM {self.database}.schema_migrations FINAL").strip()
        last = None
        if pipeline_id is not None:
            count, batch = self._run(
                f"SELECT count(), max(batch_id) FROM {self.database}.pipeline_batches FINAL "
                "WHERE query_id = {pipeline:String}",
                {"pipeline": pipeline_id},
            ).split()
            last = int(batch) if int(count) else None
        return WarehouseFacts(migration=int(migration or 0), last_batch=last)

    def backup(self, target: Path) -> None:
        """``BACKUP DATABASE ... TO File(target)``; ``target`` must not exist yet."""
        self._run(f"BACKUP DATABASE {self.database} TO File({sqltext.quote_string(str(target))})")

    def restore(self, source: Path) -> None:
        """Replace the database by the one in the backup at ``source`` (``DROP`` then ``RESTORE``).

        ClickHouse restores into a database that does not exist (it refuses to mix a backup's rows with rows it
        already has), so the current one is dropped first: a restore that then fails leaves no database, and is
        run again from the same backup.
        """
        self._run(f"DROP DATABASE IF EXISTS {self.database} SYNC")
        self._run(f"RESTORE DATABASE {self.database} FROM File({sqltext.quote_string(str(source))})")


@dataclass(frozen=True)
class WarehouseFacts:
    migration: int  # the last migration applied (0: none)
    last_batch: int | None  # the last batch of a pipeline in pipeline_batches


__all__ = ["BackupEngine", "WarehouseFacts", "backup_engine"]
