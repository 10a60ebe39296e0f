"""``rtap backup`` / ``rtap restore``: the warehouse and the stream job's checkpoint, from one moment.

A backup is a folder:

    manifest.json   what was saved: rtap's version, the database, its last migration, the pipeline and the
                    batch that the checkpoint and the warehouse had each committed
    chdb/           a copy of ``<data dir>/chdb``, the embedded warehouse's files (rtap.warehouse.chdb.backup says
                    why files and not ClickHouse's BACKUP: the tables' deduplication logs)
    checkpoints/    a copy of ``<data dir>/checkpoints`` (Spark's offsets and commits, the pipeline id)

Why both, and why only while nothing runs: the checkpoint says where in Kafka the job resumes, the warehouse
holds what it wrote up to there. Restored together from one moment they agree, and the job reads again from
Kafka whatever came after the backup. A checkpoint newer than the warehouse would resume past records the
warehouse never received (silent loss); an older one replays batches whose rows are stored, cut at other
offsets (``pipeline_batches`` would count them twice). So the backup takes the chDB directory's lock for its
whole length (refused while ``rtap up`` or ``rtap stream`` holds it) and checks the two agree before it
writes the manifest: the warehouse's last batch of the checkpoint's pipeline lies between the batch before the
last one Spark committed and the last one it planned (while the job is behind, Spark commits a batch as its
writes begin, and the sink commits it in the warehouse when they end; a batch Spark committed and the warehouse
did not is run again by the job's next start, rtap.stream.overlap). A restore is then, to the job, a crash at the
moment of the backup: the batch it had begun runs again.

Kafka is not in the backup: it is the source the job re-reads after a restore, within its retention (a
restore older than the retention is refused when the job starts, rtap.stream.gaps).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from rtap import __version__
from rtap.errors import ConfigError
from rtap.settings import Settings
from rtap.stream.checkpoint import committed_batches, planned_batches
from rtap.stream.job import PIPELINE_ID_FILE
from rtap.warehouse.migrate import load_migrations

MANIFEST = "manifest.json"
WAREHOUSE = "chdb"
CHECKPOINTS = "checkpoints"
FORMAT = 1


@dataclass(frozen=True)
class Manifest:
    """What a backup holds (``manifest.json``)."""

    format: int
    rtap_version: str
    created_at: str
    database: str
    migration: int  # the last migration applied to the saved database
    pipeline_id: str | None  # the checkpoint's pipeline (None: no checkpoint yet)
    checkpoint_batch: int | None  # the last batch Spark committed in the checkpoint
    warehouse_batch: int | None  # the last batch of that pipeline in pipeline_batches

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST
        try:
            data = json.loads(path.read_text())
            return cls(**data)
        except FileNotFoundError:
            raise ConfigError(f"{folder} is no rtap backup: it has no {MANIFEST}") from None
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{path} is not a manifest this rtap reads: {exc}") from exc


def _stream_checkpoint(settings: Settings) -> Path:
    return settings.paths.checkpoints / "stream"  # rtap.stream.job.StreamJob.checkpoint


def _require_chdb(settings: Settings, command: str) -> None:
    if settings.warehouse.backend != "chdb":
        raise ConfigError(
            f"rtap {command} works on the embedded warehouse (chDB); on a ClickHouse server use its BACKUP and "
            "RESTORE (docs/operating.md, Backup and restore)"
        )


def backup(settings: Settings, target: Path) -> Manifest:
    """Save the warehouse and the checkpoint to ``target`` (a folder that does not exist yet)."""
    from rtap.warehouse.chdb.backup import closed_warehouse

    _require_chdb(settings, "backup")
    target = target.expanduser().resolve()
    if target.exists():
        raise ConfigError(f"{target} exists: a backup goes into a new folder")
    if not target.parent.is_dir():
        raise ConfigError(f"{target.parent} is no directory")
    if not settings.paths.chdb.is_dir():
        raise ConfigError(f"there is no warehouse to back up in {settings.paths.chdb} (RTAP_DATA_DIR)")
    database = settings.warehouse.database
    with closed_warehouse(settings.paths.chdb, database, "back up the warehouse") as warehouse:
        # Read under the lock: no job can move the checkpoint on until the copy below is done.
        checkpoint = _stream_checkpoint(settings)
        marker = checkpoint / PIPELINE_ID_FILE
        pipeline = marker.read_text().strip() if marker.exists() else None
        committed, planned = committed_batches(checkpoint), planned_batches(checkpoint)
        facts = warehouse.facts(pipeline)
        checkpoint_batch = committed[-1] if committed else None
        _check_agreement(checkpoint_batch, planned[-1] if planned else None, facts.last_batch)
        target.mkdir()
        try:
            warehouse.copy_to(target / WAREHOUSE)
            if settings.paths.checkpoints.is_dir():
                shutil.copytree(settings.paths.checkpoints, target / CHECKPOINTS, symlinks=True)
            manifest = Manifest(
                format=FORMAT,
                rtap_version=__version__,
                created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                database=database,
                migration=facts.migration,
                pipeline_id=pipeline,
                checkpoint_batch=checkpoint_batch,
                warehouse_batch=facts.last_batch,
            )
            (target / MANIFEST).write_text(manifest.to_json())  # last: a folder without it is no backup
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
    return manifest


def _check_agreement(committed: int | None, planned: int | None, warehouse: int | None) -> None:
    """Refuse a checkpoint that does not belong with the warehouse (see the module docstring)."""
    low = -1 if committed is None else committed - 1  # its writes may have been in flight
    high = -1 if planned is None else planned
    last = -1 if warehouse is None else warehouse
    if not low <= last <= high:
        raise ConfigError(
            f"the checkpoint and the warehouse disagree: Spark committed batch {low} and planned {high}, the "
            f"warehouse's last batch of this pipeline is {last}; was one of them restored or deleted alone?"
        )


def restore(settings: Settings, source: Path) -> Manifest:
    """Replace the warehouse and the checkpoint by the backup in ``source``."""
    from rtap.warehouse.chdb.backup import closed_warehouse

    _require_chdb(settings, "restore")
    source = source.expanduser().resolve()
    manifest = Manifest.read(source)
    if manifest.format != FORMAT:
        raise ConfigError(f"{source} is a backup of format {manifest.format}; this rtap reads format {FORMAT}")
    if manifest.database != settings.warehouse.database:
        raise ConfigError(
            f"{source} holds database {manifest.database}, not {settings.warehouse.database} (RTAP_CLICKHOUSE_DATABASE)"
        )
    shipped = load_migrations()[-1].version
    if manifest.migration > shipped:
        raise ConfigError(
            f"{source} was made by rtap {manifest.rtap_version} with migration {manifest.migration:04d}; this rtap "
            f"ships migrations up to {shipped:04d}: restore it with an rtap at least as new"
        )
    if not (source / WAREHOUSE).is_dir():
        raise ConfigError(f"{source} has no {WAREHOUSE}/ folder")
    database = settings.warehouse.database
    with closed_warehouse(settings.paths.chdb, database, "restore the warehouse") as warehouse:
        # The checkpoint goes first: if the restore stops half-way, no checkpoint of a later moment is left to
        # resume past what the warehouse holds (without one, the job resumes from the warehouse).
        shutil.rmtree(settings.paths.checkpoints, ignore_errors=True)
        warehouse.replace_from(source / WAREHOUSE)
        facts = warehouse.facts(manifest.pipeline_id)
        if (facts.migration, facts.last_batch) != (manifest.migration, manifest.warehouse_batch):
            raise ConfigError(
                f"the warehouse restored from {source} is at migration {facts.migration:04d}, last batch "
                f"{facts.last_batch}; its manifest says {manifest.migration:04d}, {manifest.warehouse_batch}"
            )
        if (source / CHECKPOINTS).is_dir():
            shutil.copytree(source / CHECKPOINTS, settings.paths.checkpoints, symlinks=True)
    return manifest
