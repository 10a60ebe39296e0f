"""The chDB backend on a real embedded engine: migrations, inserts, dedup, inputs, read-only paths."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from rtap.errors import QueryRejectedError, WarehouseError
from rtap.settings import Settings
from rtap.warehouse import WarehouseClient, create_client
from rtap.warehouse.chdb.client import ChdbClient
from rtap.warehouse.migrate import MigrationError, apply_migrations, load_migrations

DESIGN_TABLES = {
    "events",
    "page_views_1m",
    "events_1m",
    "sessions",
    "bot_suspects",
    "dead_letters",
    "late_events",
    "pipeline_batches",
}


def _tables(client: WarehouseClient) -> set[str]:
    return {name for (name,) in client.query_rows("SELECT name FROM system.tables WHERE database = '{db}'")}


def _events(count: int, start: datetime) -> pa.Table:
    """``count`` valid events, one hour apart so that they span several daily partitions."""
    times = [start + timedelta(hours=i) for i in range(count)]
    return pa.table(
        {
            "event_id": [str(uuid.uuid4()) for _ in times],
            "event_type": ["purchase"] * count,
            "event_time": pa.array(times, pa.timestamp("ms", tz="UTC")),
            "user_id": [f"u{i}" for i in range(count)],
            "session_id": [f"s{i}" for i in range(count)],
            "page_url": ["/checkout"] * count,
            "price": pa.array([Decimal("9.990000")] * count, pa.decimal128(18, 6)),
            "quantity": pa.array([2] * count, pa.int32()),
            "schema_version": pa.array([1] * count, pa.uint8()),
            "kafka_partition": pa.array([0] * count, pa.int32()),
            "kafka_offset": pa.array(range(count), pa.int64()),
            "kafka_timestamp": pa.array(times, pa.timestamp("ms", tz="UTC")),
            "batch_id": pa.array([1] * count, pa.int64()),
            # The TTL counts from ingestion: an old ingested_at would be expired on insert.
            "ingested_at": pa.array([datetime.now(UTC)] * count, pa.timestamp("ms", tz="UTC")),
        }
    )


def test_migrations_create_every_design_table_and_rerun_applies_nothing(client: WarehouseClient) -> None:
    assert _tables(client) >= DESIGN_TABLES
    assert apply_migrations(client) == []
    recorded = client.query_rows("SELECT version, name FROM {db}.schema_migrations FINAL ORDER BY version")
    assert recorded == [(m.version, m.name) for m in load_migrations()]


def test_changed_applied_migration_is_refused(client: WarehouseClient, tmp_path: Path) -> None:
    for migration in load_migrations():
        body = ";\n".join(migration.statements)
        if migration.version == 2:
            body += ";\nCREATE TABLE IF NOT EXISTS {db}.edited (x Int8) ENGINE = Memory"
        (tmp_path / f"{migration.label}.sql").write_text(body)
    with pytest.raises(MigrationError, match="0002_events changed after it was applied"):
        apply_migrations(client, tmp_path)


def test_migration_recorded_but_not_shipped_is_refused(settings: Settings, tmp_path: Path) -> None:
    database = f"{settings.warehouse.database}_extra"
    extra = Settings(data_dir=settings.data_dir, warehouse=settings.warehouse.model_copy(update={"database": database}))
    (tmp_path / "0001_database.sql").write_text("CREATE DATABASE IF NOT EXISTS {db};")
    (tmp_path / "0002_more.sql").write_text(
        "-- nothing; really\nCREATE TABLE IF NOT EXISTS {db}.t (x Int8) ENGINE = Memory;"
    )
    with create_client(extra) as scratch:
        assert [m.label for m in apply_migrations(scratch, tmp_path)] == ["0001_database", "0002_more"]
        (tmp_path / "0002_more.sql").unlink()
        with pytest.raises(MigrationError, match="has migration\\(s\\) 0002 that this rtap does not ship"):
            apply_migrations(scratch, tmp_path)


def test_insert_arrow_with_the_same_dedup_token_keeps_one_copy(client: WarehouseClient) -> None:
    batch = _events(30, datetime(2024, 3, 1, 12, tzinfo=UTC))  # spans two days: two partitions
    token = f"test-{uuid.uuid4()}"
    client.insert_arrow("events", batch, dedup_token=token)
    client.insert_arrow("events", batch, dedup_token=token)
    ids = batch.column("event_id").to_pylist()
    count_sql = "SELECT count() FROM {db}.events WHERE toString(event_id) IN {ids:Array(String)}"
    assert client.query_rows(count_sql, parameters={"ids": ids}) == [(30,)]
    # Without the token the same rows are a new insert: the copy shows up (and FINAL collapses it).
    client.insert_arrow("events", batch)
    assert client.query_rows(count_sql, parameters={"ids": ids}) == [(60,)]
    final_sql = "SELECT count() FROM {db}.events FINAL WHERE toString(event_id) IN {ids:Array(String)}"
    assert client.query_rows(final_sql, parameters={"ids": ids}) == [(30,)]


def test_insert_arrow_matches_columns_by_name_and_fills_the_rest(client: WarehouseClient) -> None:
    batch = _events(1, datetime(2024, 3, 5, tzinfo=UTC))
    reordered = batch.select(list(reversed(batch.column_names)))
    client.insert_arrow("events", reordered, dedup_token=f"test-{uuid.uuid4()}")
    rows = client.query_rows(
        "SELECT user_id, price, quantity, referrer FROM {db}.events WHERE toString(event_id) = {id:String}",
        parameters={"id": batch.column("event_id")[0].as_py()},
    )
    assert rows == [("u0", Decimal("9.990000"), 2, None)]


def test_inputs_feed_queries_and_insert_select(client: WarehouseClient) -> None:
    left = pa.table({"k": [1, 2, 3], "v": ["a", "b", "c"]})
    right = pa.table({"k": [2, 3, 4]})
    joined = client.query_arrow(
        "SELECT l.v FROM $left AS l INNER JOIN $right AS r USING (k) ORDER BY l.v",
        inputs={"left": left, "right": right},
    )
    assert joined.column("v").to_pylist() == ["b", "c"]
    client.command("CREATE TABLE IF NOT EXISTS {db}.scratch_inputs (k Int64, v String) ENGINE = Memory")
    client.command("INSERT INTO {db}.scratch_inputs SELECT k, v FROM $rows WHERE k > 1", inputs={"rows": left})
    assert client.query_rows("SELECT k, v FROM {db}.scratch_inputs ORDER BY k") == [(2, "b"), (3, "c")]


def test_concurrent_inserts_from_inputs_stay_exact(client: WarehouseClient) -> None:
    """chDB resolves Python() names across threads: without the engine lock this sum comes out wrong."""
    client.command("CREATE TABLE IF NOT EXISTS {db}.scratch_threads (n Int64) ENGINE = Memory")
    failures: list[WarehouseError] = []

    def work(worker: int) -> None:
        try:
            for batch in range(10):
                values = pa.table({"n": pa.array([worker * 1000 + batch] * 50, pa.int64())})
                client.command("INSERT INTO {db}.scratch_threads SELECT n FROM $values", inputs={"values": values})
                client.query_rows("SELECT count() FROM {db}.scratch_threads")
        except WarehouseError as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    expected = sum((w * 1000 + b) * 50 for w in range(4) for b in range(10))
    assert client.query_rows("SELECT count(), sum(n) FROM {db}.scratch_threads") == [(2000, expected)]


def test_reads_beside_writes_from_inputs_stay_exact(settings: Settings, client: WarehouseClient) -> None:
    """Reads on the read-only connection run beside the job's writes; neither side sees the other's inputs."""
    client.command("CREATE TABLE IF NOT EXISTS {db}.scratch_beside (n Int64) ENGINE = Memory")
    stop = threading.Event()
    failures: list[Exception] = []
    reads = [0]

    def read(reader: WarehouseClient, with_inputs: bool) -> None:
        probe = pa.table({"n": pa.array([-1, -2], pa.int64())})
        try:
            while not stop.is_set():
                if with_inputs:  # a read that binds inputs takes the writers' lock as well
                    summed = reader.query_arrow("SELECT sum(n) AS s FROM $probe", inputs={"probe": probe})
                    assert summed.column("s").to_pylist() == [-3]
                else:
                    reader.query_rows("SELECT count() FROM {db}.scratch_beside")
                reads[0] += 1
        except Exception as exc:  # noqa: BLE001 - handed to the test's thread, which fails on it
            failures.append(exc)

    with create_client(settings, readonly=True) as reader:
        threads = [threading.Thread(target=read, args=(reader, w == 0)) for w in range(3)]
        for thread in threads:
            thread.start()
        try:
            for batch in range(60):
                values = pa.table({"n": pa.array([batch] * 50, pa.int64())})
                client.command("INSERT INTO {db}.scratch_beside SELECT n FROM $values", inputs={"values": values})
        finally:
            stop.set()
            for thread in threads:
                thread.join()
    assert failures == []
    assert reads[0] > 0
    expected = sum(batch * 50 for batch in range(60))
    assert client.query_rows("SELECT count(), sum(n) FROM {db}.scratch_beside") == [(3000, expected)]


def test_a_long_read_does_not_hold_up_a_write(settings: Settings, client: WarehouseClient) -> None:
    """A dashboard's read (2 s here) leaves the job's write free to run: they take different locks."""
    client.command("CREATE TABLE IF NOT EXISTS {db}.scratch_during (n Int64) ENGINE = Memory")
    marker = f"long read {uuid.uuid4().hex}"
    failures: list[Exception] = []

    def long_read(reader: WarehouseClient) -> None:
        try:
            reader.query_rows(f"SELECT sleepEachRow(0.5), '{marker}' FROM numbers(4)")
        except Exception as exc:  # noqa: BLE001 - handed to the test's thread, which fails on it
            failures.append(exc)

    with create_client(settings, readonly=True) as reader:
        thread = threading.Thread(target=long_read, args=(reader,))
        thread.start()
        running = "SELECT count() FROM system.processes WHERE query LIKE {m:String} AND query NOT LIKE '%processes%'"
        for _ in range(200):  # until the engine runs the read (at most 2 s)
            if client.query_rows(running, parameters={"m": f"%{marker}%"}) == [(1,)]:
                break
            time.sleep(0.01)
        else:
            pytest.fail("the long read never showed in system.processes beside the writer's session")
        values = pa.table({"n": pa.array([7], pa.int64())})
        client.command("INSERT INTO {db}.scratch_during SELECT n FROM $values", inputs={"values": values})
        still_reading = thread.is_alive()
        thread.join()
    assert failures == []
    assert still_reading, "the write waited for the read to end"
    assert client.query_rows("SELECT sum(n) FROM {db}.scratch_during") == [(7,)]


def test_render_replaces_db_everywhere(client: WarehouseClient) -> None:
    assert client.render("SELECT * FROM {db}.events WHERE database = '{db}'") == (
        f"SELECT * FROM {client.database}.events WHERE database = '{client.database}'"
    )


def test_query_text_uses_the_default_format_unless_the_query_names_one(client: WarehouseClient) -> None:
    assert client.query_text("SELECT 1 AS x, 'a' AS y", default_format="TabSeparated") == b"1\ta\n"
    assert client.query_text("SELECT 1 AS x FORMAT JSONEachRow", default_format="TabSeparated") == b'{"x":1}\n'
    assert "┌─x─┐" in client.query_text("SELECT 1 AS x").decode()


def test_readonly_client_refuses_writes(settings: Settings, client: WarehouseClient) -> None:
    with create_client(settings, readonly=True) as reader:
        assert isinstance(reader, ChdbClient)
        assert reader.query_rows("SELECT count() > 0 FROM {db}.schema_migrations") == [(True,)]
        with pytest.raises(QueryRejectedError, match="read-only"):
            reader.command("CREATE TABLE {db}.nope (x Int8) ENGINE = Memory")
        with pytest.raises(QueryRejectedError, match="read-only"):
            reader.insert_arrow("events", _events(1, datetime(2024, 1, 1, tzinfo=UTC)))
        with pytest.raises(QueryRejectedError, match="only SELECT"):
            reader.query_arrow("INSERT INTO {db}.events (user_id) SELECT 'x'")
        # Below the statement check, the engine's readonly connection refuses on its own (code 164).
        with pytest.raises(QueryRejectedError) as refused:
            reader._query_arrow("INSERT INTO " + reader.database + ".dead_letters (error) SELECT 'x'", {}, {}, {})
        assert refused.value.code == 164
    assert "nope" not in _tables(client)


def test_query_text_is_read_only_even_on_a_writing_client(client: WarehouseClient) -> None:
    with pytest.raises(QueryRejectedError, match="only SELECT"):
        client.query_text("DROP TABLE {db}.events")
    assert "events" in _tables(client)


def test_engine_errors_keep_their_code(client: WarehouseClient) -> None:
    with pytest.raises(WarehouseError) as missing:
        client.query_rows("SELECT * FROM {db}.no_such_table")
    assert missing.value.code == 60
    assert "UNKNOWN_TABLE" in str(missing.value)
    assert "\n" not in str(missing.value)
    assert "no_such_table" in str(missing.value.query)


def test_a_failed_query_is_the_error_raised_even_when_clearing_the_connection_fails_too(
    client: WarehouseClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = client._engine  # type: ignore[attr-defined]
    session = engine.session

    class ClearingFails:
        """The engine's session, but the throwaway query after a failure fails as well."""

        def __getattr__(self, name: str) -> object:
            return getattr(session, name)

        def query(self, sql: str, *args: object, **kwargs: object) -> object:
            if sql == "SELECT 1":
                raise RuntimeError("Code: 999. DB::Exception: the connection is gone")
            return session.query(sql, *args, **kwargs)

    monkeypatch.setattr(engine, "session", ClearingFails())
    with pytest.raises(WarehouseError) as failed:
        client.command("INSERT INTO {db}.no_such_table VALUES (1)")
    assert failed.value.code == 60  # the insert's error, not the clearing query's
    assert "then clearing the connection failed too: Code: 999" in "\n".join(failed.value.__notes__)


def test_clients_in_one_process_share_the_engine(settings: Settings, client: WarehouseClient) -> None:
    with create_client(settings) as second:
        assert isinstance(second, ChdbClient)
        assert second.directory == settings.paths.chdb
        second.command("CREATE TABLE IF NOT EXISTS {db}.scratch_shared (x Int8) ENGINE = Memory")
    # Closing the second client must leave the first one working.
    assert "scratch_shared" in _tables(client)


def test_a_second_data_directory_in_the_same_process_is_refused(settings: Settings, tmp_path: Path) -> None:
    other = Settings(data_dir=tmp_path, warehouse=settings.warehouse)
    with pytest.raises(WarehouseError, match="one data directory per process"):
        create_client(other)
