"""``rtap backup`` / ``rtap restore`` on a real chDB directory: every table and the checkpoint come back as they
were, and each refusal is one line (a directory in use, a checkpoint that does not belong with the warehouse, a
backup a newer rtap made). The pipeline around it (Spark, Kafka) is tests/e2e/test_operating.py."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rtap.cli import app
from rtap.errors import ConfigError, RetryableWarehouseError
from rtap.ops.backup import CHECKPOINTS, MANIFEST, Manifest, backup, restore
from rtap.settings import Settings, WarehouseSettings
from rtap.stream.checkpoint import committed_batches
from rtap.stream.job import PIPELINE_ID_FILE
from rtap.warehouse import create_client
from rtap.warehouse.chdb.ownership import try_acquire
from rtap.warehouse.migrate import MigrationError, apply_migrations, load_migrations
from tests.support.seed import seed_clickstream

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
PIPELINE = "5b0f0c8e-8d0f-4a57-9d0c-6f7b3f1e2a10"


def make_settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir, warehouse=WarehouseSettings(backend="chdb", database=f"rtap_test_{uuid.uuid4().hex[:8]}")
    )


def spark_checkpoint(settings: Settings, committed: int, planned: int) -> Path:
    """The files of Spark's checkpoint that rtap reads: offsets/N planned, commits/N committed, the pipeline id."""
    checkpoint = settings.paths.checkpoints / "stream"
    for folder, last in (("offsets", planned), ("commits", committed)):
        (checkpoint / folder).mkdir(parents=True, exist_ok=True)
        for batch in range(last + 1):
            (checkpoint / folder / str(batch)).write_text(f"v1\n{folder} of batch {batch}\n")
    (checkpoint / PIPELINE_ID_FILE).write_text(PIPELINE)
    return checkpoint


def commit_batches(settings: Settings, last: int, *, seed_version: int = 1) -> None:
    """A migrated warehouse with windows, events and ``last + 1`` committed batches of the pipeline."""
    with create_client(settings) as client:
        apply_migrations(client)
        seed_clickstream(client, NOW, version=seed_version)
        for batch in range(last + 1):
            client.command(
                "INSERT INTO {db}.pipeline_batches (query_id, batch_id, input_rows, started_at, finished_at)"
                " VALUES ({pipeline:String}, {batch:Int64}, 100, now64(3), now64(3))",
                parameters={"pipeline": PIPELINE, "batch": batch},
            )


def snapshot(settings: Settings) -> dict[str, tuple[int, int]]:
    """Every table of the database: its row count and an order-free digest of its rows."""
    with create_client(settings) as client:
        tables = client.query_rows(
            "SELECT name FROM system.tables WHERE database = {database:String} AND engine LIKE '%MergeTree'",
            parameters={"database": settings.warehouse.database},
        )
        return {
            name: tuple(client.query_rows(f"SELECT count(), groupBitXor(cityHash64(*)) FROM {{db}}.{name}")[0])
            for (name,) in tables
        }


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_restore_brings_back_every_table_and_the_checkpoint_of_the_backups_moment(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    commit_batches(settings, last=2)
    spark_checkpoint(settings, committed=2, planned=2)
    tables, checkpoint = snapshot(settings), files(settings.paths.checkpoints)
    assert tables["events"][0] > 0
    assert tables["pipeline_batches"][0] == 3

    manifest = backup(settings, tmp_path / "backup")
    assert (manifest.migration, manifest.pipeline_id) == (load_migrations()[-1].version, PIPELINE)
    assert (manifest.checkpoint_batch, manifest.warehouse_batch) == (2, 2)
    assert Manifest.read(tmp_path / "backup") == manifest

    # The pipeline moves on after the backup: more batches, rewritten windows, a checkpoint further on.
    commit_batches(settings, last=5, seed_version=2)
    spark_checkpoint(settings, committed=5, planned=6)
    assert snapshot(settings) != tables

    restore(settings, tmp_path / "backup")
    assert snapshot(settings) == tables
    assert files(settings.paths.checkpoints) == checkpoint
    assert committed_batches(settings.paths.checkpoints / "stream") == [0, 1, 2]


def test_a_batch_planned_but_not_committed_by_spark_may_be_in_the_warehouse(tmp_path: Path) -> None:
    """Stopped after the sink committed batch 3 and before Spark did: the restart runs 3 again, harmlessly."""
    settings = make_settings(tmp_path / "data")
    commit_batches(settings, last=3)
    spark_checkpoint(settings, committed=2, planned=3)
    manifest = backup(settings, tmp_path / "backup")
    assert (manifest.checkpoint_batch, manifest.warehouse_batch) == (2, 3)


def test_a_batch_committed_by_spark_may_be_missing_from_the_warehouse(tmp_path: Path) -> None:
    """Stopped while batch 3's writes were in flight (Spark commits a batch as its writes begin, rtap.stream.overlap):
    the next start takes 3 out of Spark's commit log and runs it again."""
    settings = make_settings(tmp_path / "data")
    commit_batches(settings, last=2)
    spark_checkpoint(settings, committed=3, planned=4)
    manifest = backup(settings, tmp_path / "backup")
    assert (manifest.checkpoint_batch, manifest.warehouse_batch) == (3, 2)


@pytest.mark.parametrize(
    ("committed", "planned", "warehouse"),
    [(5, 5, 2), (2, 2, 4)],
    ids=["checkpoint ahead of the warehouse", "warehouse ahead of the checkpoint"],
)
def test_a_checkpoint_that_does_not_belong_with_the_warehouse_is_refused(
    tmp_path: Path, committed: int, planned: int, warehouse: int
) -> None:
    settings = make_settings(tmp_path / "data")
    commit_batches(settings, last=warehouse)
    spark_checkpoint(settings, committed=committed, planned=planned)
    with pytest.raises(ConfigError, match="the checkpoint and the warehouse disagree"):
        backup(settings, tmp_path / "backup")
    assert not (tmp_path / "backup").exists()


def test_backup_and_restore_are_refused_while_a_process_owns_the_directory(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    commit_batches(settings, last=0)
    backup(settings, tmp_path / "backup")
    held = try_acquire(settings.paths.chdb)  # what `rtap up` holds while it runs
    assert held is not None
    try:
        with pytest.raises(RetryableWarehouseError, match=r"cannot back up the warehouse: .* is in use by rtap"):
            backup(settings, tmp_path / "second")
        with pytest.raises(RetryableWarehouseError, match=r"cannot restore the warehouse: .* stop it first"):
            restore(settings, tmp_path / "backup")
    finally:
        held.release()
    assert not (tmp_path / "second").exists()


def test_what_is_no_backup_of_this_rtap_is_refused_before_anything_changes(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    commit_batches(settings, last=0)
    before = snapshot(settings)
    with pytest.raises(ConfigError, match=r"is no rtap backup: it has no manifest\.json"):
        restore(settings, tmp_path)
    backup(settings, tmp_path / "backup")
    with pytest.raises(ConfigError, match="exists: a backup goes into a new folder"):
        backup(settings, tmp_path / "backup")

    manifest = json.loads((tmp_path / "backup" / MANIFEST).read_text())
    newer = tmp_path / "newer"
    (newer / "warehouse").mkdir(parents=True)
    (newer / MANIFEST).write_text(json.dumps({**manifest, "migration": 9999, "rtap_version": "9.0.0"}))
    with pytest.raises(ConfigError, match="with migration 9999; this rtap ships migrations up to"):
        restore(settings, newer)
    with pytest.raises(ConfigError, match="there is no warehouse to back up in"):
        backup(make_settings(tmp_path / "elsewhere"), tmp_path / "nothing")
    other = make_settings(tmp_path / "data")
    with pytest.raises(ConfigError, match=f"holds database {settings.warehouse.database}, not"):
        restore(other, tmp_path / "backup")
    assert snapshot(settings) == before


def test_rolling_back_an_upgrade_is_restoring_the_backup_taken_before_it(tmp_path: Path) -> None:
    """Migrations only go forward: this rtap refuses a database a newer one migrated, until the backup taken
    before the upgrade is restored."""
    settings = make_settings(tmp_path / "data")
    commit_batches(settings, last=1)
    spark_checkpoint(settings, committed=1, planned=1)
    before = snapshot(settings)
    backup(settings, tmp_path / "before-upgrade")

    newer = tmp_path / "newer-migrations"  # what the next rtap ships: these and one more
    newer.mkdir()
    for migration in (resources.files("rtap.warehouse") / "migrations").iterdir():
        (newer / migration.name).write_text(migration.read_text())
    upgrade = f"{load_migrations()[-1].version + 1:04d}_next_release.sql"
    (newer / upgrade).write_text("ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS next_release Nullable(String);\n")
    with create_client(settings) as client:
        assert [m.label for m in apply_migrations(client, newer)] == [upgrade.removesuffix(".sql")]
    with create_client(settings) as client, pytest.raises(MigrationError, match="it was migrated by a newer version"):
        apply_migrations(client)  # this rtap, started again after the upgrade was rolled back

    restore(settings, tmp_path / "before-upgrade")
    with create_client(settings) as client:
        assert apply_migrations(client) == []
    assert snapshot(settings) == before


def test_the_server_backend_is_sent_to_clickhouses_own_backup() -> None:
    settings = Settings(warehouse=WarehouseSettings(backend="server"))
    with pytest.raises(ConfigError, match="on a ClickHouse server use its BACKUP and RESTORE"):
        backup(settings, Path("/nonexistent/backup"))


def test_the_commands_print_one_line_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_settings(tmp_path / "data")
    commit_batches(settings, last=1)
    spark_checkpoint(settings, committed=1, planned=1)
    monkeypatch.setenv("RTAP_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RTAP_CLICKHOUSE_DATABASE", settings.warehouse.database)
    runner = CliRunner()
    saved = runner.invoke(app, ["backup", str(tmp_path / "backup")])
    assert saved.exit_code == 0, saved.output
    assert "last batch 1) and the checkpoint to" in saved.output
    assert (tmp_path / "backup" / CHECKPOINTS / "stream" / PIPELINE_ID_FILE).read_text() == PIPELINE
    brought = runner.invoke(app, ["restore", str(tmp_path / "backup")])
    assert brought.exit_code == 0, brought.output
    assert "restored database" in brought.output
