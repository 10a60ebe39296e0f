"""Why ``rtap backup`` copies chDB's files rather than running ClickHouse's BACKUP: the deduplication tokens.

The stream job writes a batch it runs again under the same ``insert_deduplication_token``; the table's
deduplication log drops the second copy. A restore must bring that log back with the rows, or a batch begun
before the backup is stored twice when the job runs it again. rtap's copy does; ClickHouse's ``RESTORE`` makes
new tables with empty logs (which is why docs/operating.md asks a server's backup to be taken between batches).
"""

from __future__ import annotations

import uuid
from pathlib import Path

from rtap.ops.backup import backup, restore
from rtap.settings import Settings, WarehouseSettings
from rtap.warehouse import create_client
from rtap.warehouse.migrate import apply_migrations

TOKEN = "rtap:dead_letters:0123456789abcdef"
INSERT = (
    "INSERT INTO {db}.dead_letters (received_at, topic, `partition`, `offset`, error, raw)"
    " SELECT now64(3), 'clickstream.events', 0, {offset:Int64}, 'invalid JSON', 'x'"
)


def make_settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir, warehouse=WarehouseSettings(backend="chdb", database=f"rtap_test_{uuid.uuid4().hex[:8]}")
    )


def insert(settings: Settings, offset: int, token: str = TOKEN) -> int:
    """Insert one dead letter under ``token``; the table's row count after it."""
    with create_client(settings) as client:
        client.command(INSERT, parameters={"offset": offset}, settings={"insert_deduplication_token": token})
        return int(client.query_rows("SELECT count() FROM {db}.dead_letters")[0][0])


def test_rtaps_restore_keeps_the_tokens_so_a_batch_written_again_is_dropped(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    with create_client(settings) as client:
        apply_migrations(client)
    assert insert(settings, offset=1) == 1
    backup(settings, tmp_path / "backup")
    assert insert(settings, offset=2, token="rtap:dead_letters:after-the-backup") == 2
    restore(settings, tmp_path / "backup")
    assert insert(settings, offset=1) == 1  # the block written before the backup, again: dropped


def test_clickhouses_restore_forgets_the_tokens(tmp_path: Path) -> None:
    """The measurement behind the choice (chDB runs ClickHouse's BACKUP given ``backups.allowed_path``)."""
    from chdb import connect

    config = tmp_path / "config.xml"
    config.write_text(f"<clickhouse><backups><allowed_path>{tmp_path}/</allowed_path></backups></clickhouse>")
    connection = connect(f"{tmp_path / 'chdb'}?config-file={config}")  # type: ignore[no-untyped-call]

    def run(sql: str) -> str:
        return str(connection.query(sql, "TabSeparated")).strip()

    try:
        run("CREATE DATABASE tokens")
        run(
            "CREATE TABLE tokens.t (n UInt32) ENGINE = MergeTree ORDER BY n "
            "SETTINGS non_replicated_deduplication_window = 100"
        )
        repeat = f"INSERT INTO tokens.t SETTINGS insert_deduplication_token = '{TOKEN}' VALUES (1)"
        run(repeat)
        run(repeat)
        assert run("SELECT count() FROM tokens.t") == "1"
        run(f"BACKUP DATABASE tokens TO File('{tmp_path}/clickhouse-backup')")
        run("DROP DATABASE tokens SYNC")
        run(f"RESTORE DATABASE tokens FROM File('{tmp_path}/clickhouse-backup')")
        assert run("SELECT count() FROM tokens.t") == "1"
        run(repeat)
        assert run("SELECT count() FROM tokens.t") == "2"  # stored twice
    finally:
        connection.close()
