"""The migrations rendered for one server and for a cluster: expected text, and ClickHouse's own parser on all of it.

No cluster runs here (no Keeper, no second server), so cluster DDL is proven as far as the engine can without
one: every rendered statement of both modes parses in chDB (the ClickHouse parser, ``formatQuery``), and a few
are compared with the exact text expected. One-server mode migrating chDB for real is the conftest's fixture.
"""

from __future__ import annotations

import pytest

from rtap.errors import WarehouseError
from rtap.settings import WarehouseSettings
from rtap.warehouse import WarehouseClient
from rtap.warehouse.migrate import LEDGER_DDL, load_migrations
from rtap.warehouse.schema import RETENTION, Schema, TableTTL, current_ttl, ttl_differs

CLUSTER = Schema(cluster="rtap_cluster")
MACRO_CLUSTER = Schema(cluster="{cluster}", replica_path="/clickhouse/{installation}/tables/{shard}/{uuid}")
PATH = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'"


def _statements() -> list[str]:
    return [*LEDGER_DDL, *(statement for migration in load_migrations() for statement in migration.statements)]


def _migration(version: int) -> tuple[str, ...]:
    (migration,) = (m for m in load_migrations() if m.version == version)
    return migration.statements


def test_one_server_runs_the_files_as_written() -> None:
    assert [Schema().render(statement) for statement in _statements()] == _statements()


def test_the_database_is_created_on_the_cluster() -> None:
    assert [CLUSTER.render(s) for s in _migration(1)] == [
        "CREATE DATABASE IF NOT EXISTS {db} ON CLUSTER 'rtap_cluster'"
    ]


def test_a_versioned_table_becomes_replicated_with_its_version_column_kept() -> None:
    (batches,) = _migration(4)
    rendered = CLUSTER.render(batches)
    assert rendered.startswith("CREATE TABLE IF NOT EXISTS {db}.pipeline_batches ON CLUSTER 'rtap_cluster'\n(\n")
    assert rendered.endswith(
        f")\nENGINE = ReplicatedReplacingMergeTree({PATH}, finished_at)\n"
        "PARTITION BY toYYYYMM(started_at)\n"
        "ORDER BY (query_id, batch_id)\n"
        "TTL toDateTime(started_at) + INTERVAL 90 DAY\n"
        "SETTINGS replicated_deduplication_window = 10000"
    )
    # Only the head and the engine change: the columns are the file's.
    assert rendered.count("\n") == batches.count("\n")


def test_alters_views_and_materialized_views_run_on_the_cluster() -> None:
    statements = [CLUSTER.render(s) for s in _migration(9)]
    assert statements[0].startswith(
        "ALTER TABLE {db}.pipeline_batches ON CLUSTER 'rtap_cluster'\n"
        "    ADD COLUMN IF NOT EXISTS topic_high_water Map(String, Map(Int32, DateTime64(3, 'UTC'))),"
    )
    assert statements[1] == (
        "ALTER TABLE {db}.events ON CLUSTER 'rtap_cluster' ADD COLUMN IF NOT EXISTS kafka_topic LowCardinality(String) "
        "AFTER schema_version"
    )
    view = CLUSTER.render(_migration(8)[0])
    assert view.startswith(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.page_views_1m_state_mv ON CLUSTER 'rtap_cluster' "
        "TO {db}.page_views_1m_state AS\nSELECT"
    )


def test_an_aggregating_table_keeps_no_engine_arguments_it_had_none_of() -> None:
    state = CLUSTER.render(_migration(3)[0])
    assert f"ENGINE = ReplicatedAggregatingMergeTree({PATH})\n" in state
    assert "non_replicated" not in state


def test_inserts_and_checks_run_once_on_the_replica_they_reach() -> None:
    backfill = next(s for s in _migration(10) if s.startswith("INSERT"))
    check = next(s for s in _migration(6) if s.startswith("SELECT throwIf"))
    assert CLUSTER.render(backfill) == backfill
    assert CLUSTER.render(check) == check


@pytest.mark.parametrize(
    "statement",
    [
        "DROP TABLE {db}.events",
        "CREATE TABLE {db}.t (x UInt8) ENGINE = Memory",
        "CREATE TABLE IF NOT EXISTS {db}.t (x UInt8) ENGINE = Log",
        "RENAME TABLE {db}.a TO {db}.b",
    ],
)
def test_ddl_it_cannot_render_for_a_cluster_is_refused(statement: str) -> None:
    assert Schema().render(statement) == statement
    with pytest.raises(WarehouseError, match="rtap_cluster"):
        CLUSTER.render(statement)


def test_a_cluster_needs_a_server() -> None:
    with pytest.raises(ValueError, match="RTAP_CLICKHOUSE_CLUSTER needs RTAP_CLICKHOUSE_BACKEND=server"):
        WarehouseSettings(cluster="c")
    settings = WarehouseSettings(backend="server", cluster="c", replica_name="{replica}-x")
    schema = Schema.from_settings(settings)
    assert (schema.cluster, schema.replica_name) == ("c", "{replica}-x")


def _parsed(client: WarehouseClient, statement: str) -> str:
    """ClickHouse's parser on ``statement`` ({db} rendered): its canonical text, or the syntax error it raises."""
    ((formatted,),) = client.query_rows("SELECT formatQuery({q:String})", parameters={"q": client.render(statement)})
    return str(formatted)


@pytest.mark.parametrize("schema", [Schema(), CLUSTER, MACRO_CLUSTER], ids=["one server", "cluster", "macros"])
def test_every_rendered_statement_parses_in_clickhouse(client: WarehouseClient, schema: Schema) -> None:
    statements = [schema.render(s) for s in _statements()]
    statements += [schema.ttl_statement(ttl) for ttl in schema.retention]
    statements += [schema.ttl_statement(TableTTL(table, column, 0)) for table, (column, _) in RETENTION.items()]
    for statement in statements:
        formatted = _parsed(client, statement)
        if schema.cluster:
            assert " ON CLUSTER " in formatted or not statement.startswith(("CREATE", "ALTER")), formatted
            assert "non_replicated_deduplication_window" not in formatted
    assert len(statements) == len(_statements()) + 2 * len(RETENTION)


def test_the_parser_check_has_teeth(client: WarehouseClient) -> None:
    with pytest.raises(WarehouseError, match="SYNTAX_ERROR"):
        _parsed(client, "CREATE TABLE {db}.t ON CLUSTER (x UInt8) ENGINE = MergeTree ORDER BY x")


def test_every_cluster_table_is_replicated(client: WarehouseClient) -> None:
    tables = [s for s in _statements() if s.startswith("CREATE TABLE")]
    engines = [_parsed(client, CLUSTER.render(s)).split("ENGINE = ", 1)[1].split("(", 1)[0] for s in tables]
    assert len(engines) == len(tables) > 10
    assert all(engine.startswith("Replicated") and engine.endswith("MergeTree") for engine in engines), engines


def test_retention_statements() -> None:
    events = TableTTL("events", "ingested_at", 365)
    assert (
        Schema().ttl_statement(events)
        == "ALTER TABLE {db}.events MODIFY TTL toDateTime(ingested_at) + INTERVAL 365 DAY"
    )
    assert CLUSTER.ttl_statement(TableTTL("events", "ingested_at", 0)) == (
        "ALTER TABLE {db}.events ON CLUSTER 'rtap_cluster' REMOVE TTL"
    )


@pytest.mark.parametrize(
    ("engine_full", "ttl"),
    [
        (
            "ReplacingMergeTree ORDER BY x TTL toDateTime(ingested_at) + toIntervalDay(30) SETTINGS a = 1",
            ("ingested_at", 30),
        ),
        (
            "ReplicatedReplacingMergeTree('/p', '{replica}') ORDER BY x TTL toDateTime(started_at) + INTERVAL 90 DAY",
            ("started_at", 90),
        ),
        ("ReplacingMergeTree ORDER BY x SETTINGS index_granularity = 8192", None),
        (
            "MergeTree ORDER BY x TTL toDateTime(t) + toIntervalDay(3) TO VOLUME 'cold'",
            "TTL toDateTime(t) + toIntervalDay(3) TO VOLUME 'cold'",
        ),
    ],
)
def test_a_tables_ttl_is_read_from_its_engine(engine_full: str, ttl: object) -> None:
    assert current_ttl(engine_full) == ttl


def test_only_a_different_ttl_is_changed() -> None:
    engine = "ReplacingMergeTree ORDER BY x TTL toDateTime(ingested_at) + toIntervalDay(30) SETTINGS a = 1"
    assert not ttl_differs(TableTTL("events", "ingested_at", 30), engine)
    assert ttl_differs(TableTTL("events", "ingested_at", 31), engine)
    assert ttl_differs(TableTTL("events", "ingested_at", 0), engine)
    assert not ttl_differs(TableTTL("events", "ingested_at", 0), "ReplacingMergeTree ORDER BY x")
