"""Retention from the settings, applied by every migrate on a real chDB engine; and cluster mode's own checks."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rtap.settings import Settings, WarehouseSettings
from rtap.warehouse import WarehouseClient, create_client
from rtap.warehouse.migrate import MigrationError, apply_migrations, apply_retention
from rtap.warehouse.schema import Schema, TableTTL


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WarehouseClient]:
    warehouse = WarehouseSettings(
        backend="chdb",
        database=f"rtap_test_{uuid.uuid4().hex[:8]}",
        retention_events_days=7,
        retention_late_events_days=0,
        retention_dead_letters_days=45,
    )
    settings = Settings(data_dir=Path(tmp_path_factory.mktemp("chdb")), warehouse=warehouse)
    with create_client(settings) as warehouse_client:
        apply_migrations(warehouse_client)
        yield warehouse_client


def _ttl(client: WarehouseClient, table: str) -> str | None:
    ((create,),) = client.query_rows(f"SHOW CREATE TABLE {{db}}.{table}")
    match = re.search(r"^TTL (.*)$", str(create), re.MULTILINE)
    return match.group(1) if match else None


def test_migrate_sets_every_tables_ttl_from_the_settings(client: WarehouseClient) -> None:
    assert _ttl(client, "events") == "toDateTime(ingested_at) + toIntervalDay(7)"
    assert _ttl(client, "event_ids") == "toDateTime(ingested_at) + toIntervalDay(7)"  # follows events
    assert _ttl(client, "sessions") == "toDateTime(ingested_at) + toIntervalDay(7)"  # follows events
    assert _ttl(client, "activity_1m_state") == "toDateTime(ingested_at) + toIntervalDay(7)"  # follows events
    assert _ttl(client, "late_events") is None  # 0: kept forever
    assert _ttl(client, "dead_letters") == "toDateTime(received_at) + toIntervalDay(45)"
    assert _ttl(client, "pipeline_batches") == "toDateTime(started_at) + toIntervalDay(90)"  # the default


_SESSION_EVENTS = """
INSERT INTO {db}.events
    (event_id, event_type, event_time, user_id, session_id, page_url, ip_address, ingested_at)
SELECT generateUUIDv4(number), 'page_view', {event_time:DateTime64(3, 'UTC')}, {session:String}, {session:String},
       '/', {session:String}, {ingested_at:DateTime64(3, 'UTC')} + toIntervalSecond(number)
FROM numbers({events:UInt32})
"""


def test_per_entity_rows_expire_with_their_events_counted_from_ingestion(client: WarehouseClient) -> None:
    """sessions and activity_1m_state (migration 0014) keep the newest ingestion time of each row's events and
    expire with events' retention (7 days here): the rows of events ingested ten days ago are gone, as the events
    are; those of events ten days old but ingested now (a replay, a backfill) stay, as the events do. (Here the
    session, the user and the address share one name.)"""
    now = datetime.now(UTC).replace(microsecond=0)
    old = now - timedelta(days=10)
    for session, ingested_at in (("ingested-long-ago", old), ("replayed-now", now)):
        parameters = {"event_time": old, "session": session, "ingested_at": ingested_at, "events": 3}
        client.command(_SESSION_EVENTS, parameters=parameters)
    for table in ("sessions", "activity_1m_state", "events"):
        client.command(f"OPTIMIZE TABLE {{db}}.{table} FINAL")

    sessions = client.query_rows("SELECT session_id, events, ingested_at FROM {db}.sessions FINAL")
    events = client.query_rows("SELECT session_id, count() FROM {db}.events FINAL GROUP BY session_id")
    assert [(str(s), int(n), t.replace(tzinfo=UTC)) for s, n, t in sessions] == [
        ("replayed-now", 3, now + timedelta(seconds=2))
    ]
    assert [(str(s), int(n)) for s, n in events] == [("replayed-now", 3)]
    activity = client.query_rows(
        "SELECT actor_kind, actor, sum(clicks), max(ingested_at) FROM {db}.activity_1m_state "
        "GROUP BY actor_kind, actor ORDER BY actor_kind"
    )
    assert [(str(k), str(a), int(n), t.replace(tzinfo=UTC)) for k, a, n, t in activity] == [
        ("ip", "replayed-now", 3, now + timedelta(seconds=2)),
        ("user", "replayed-now", 3, now + timedelta(seconds=2)),
    ]


def test_a_ttl_that_matches_is_left_alone(client: WarehouseClient) -> None:
    assert apply_retention(client) == []
    assert apply_migrations(client) == []


def test_a_changed_setting_changes_only_its_table(client: WarehouseClient) -> None:
    before = client.schema
    retention = tuple(
        TableTTL(t.table, t.column, 120) if t.table == "pipeline_batches" else t for t in before.retention
    )
    client.schema = replace(before, retention=retention)
    try:
        assert apply_retention(client) == [
            f"ALTER TABLE {client.database}.pipeline_batches MODIFY TTL toDateTime(started_at) + INTERVAL 120 DAY"
        ]
        assert _ttl(client, "pipeline_batches") == "toDateTime(started_at) + toIntervalDay(120)"
        assert _ttl(client, "events") == "toDateTime(ingested_at) + toIntervalDay(7)"
    finally:
        client.schema = before


def test_a_cluster_the_server_does_not_know_is_refused_before_any_ddl(client: WarehouseClient) -> None:
    before = client.schema
    client.schema = Schema(cluster="nowhere")
    try:
        with pytest.raises(MigrationError, match="the server knows no cluster nowhere"):
            apply_migrations(client)
    finally:
        client.schema = before
