"""The server backend's pure parts: settings -> connection arguments, `$inputs` as external data.

No ClickHouse server runs on this machine (see tests/integration/warehouse), so the queries
themselves are covered by the chDB tests, which share every line above the backend hooks.
"""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
import pytest
from pydantic import SecretStr

from rtap.settings import WarehouseSettings
from rtap.warehouse import WarehouseClient
from rtap.warehouse.server.client import (
    bind_inputs,
    clickhouse_type,
    connect_kwargs,
    external_data,
    with_writer_settings,
    writer_settings,
)


def _settings() -> WarehouseSettings:
    return WarehouseSettings(
        backend="server",
        host="ch.example",
        port=8443,
        secure=True,
        user="writer",
        password=SecretStr("w-secret"),
        readonly_user="reader",
        readonly_password=SecretStr("r-secret"),
        connect_timeout_s=2.5,
        query_timeout_s=30,
    )


def test_writing_clients_log_in_as_the_writer() -> None:
    kwargs = connect_kwargs(_settings(), readonly=False)
    assert kwargs["username"] == "writer"
    assert kwargs["password"] == "w-secret"
    assert kwargs["host"] == "ch.example"
    assert kwargs["port"] == 8443
    assert kwargs["interface"] == "https"
    assert kwargs["secure"] is True
    assert kwargs["connect_timeout"] == 3
    assert kwargs["send_receive_timeout"] == 30
    # A shared client needs sessions off: a ClickHouse HTTP session runs one query at a time.
    assert kwargs["autogenerate_session_id"] is False
    assert "database" not in kwargs


def test_readonly_clients_log_in_as_the_reader() -> None:
    kwargs = connect_kwargs(_settings(), readonly=True)
    assert (kwargs["username"], kwargs["password"]) == ("reader", "r-secret")


def test_plain_http_by_default() -> None:
    assert connect_kwargs(WarehouseSettings(), readonly=False)["interface"] == "http"


def test_arrow_types_map_to_clickhouse_types() -> None:
    schema = pa.schema(
        [
            pa.field("id", pa.uuid(), nullable=False),
            pa.field("n", pa.int64(), nullable=False),
            pa.field("price", pa.decimal128(18, 6)),
            pa.field("at", pa.timestamp("ms", tz="UTC"), nullable=False),
            pa.field("kind", pa.dictionary(pa.int32(), pa.string())),
            pa.field("tags", pa.list_(pa.string())),
            pa.field("offsets", pa.map_(pa.int32(), pa.int64()), nullable=False),
        ]
    )
    assert [clickhouse_type(f.type, nullable=f.nullable) for f in schema] == [
        "UUID",
        "Int64",
        "Nullable(Decimal(18, 6))",
        "DateTime64(3, 'UTC')",
        "LowCardinality(Nullable(String))",
        "Array(Nullable(String))",
        "Map(Int32, Nullable(Int64))",
    ]


def test_inputs_travel_as_external_tables() -> None:
    table = pa.table(
        {"k": pa.array([1, 2], pa.int32()), "price": pa.array([Decimal("1.5"), None], pa.decimal128(9, 2))}
    )
    assert bind_inputs("SELECT * FROM $rows WHERE k IN (SELECT k FROM $rows)", {"rows": table}) == (
        "SELECT * FROM _rtap_input_rows WHERE k IN (SELECT k FROM _rtap_input_rows)"
    )
    data = external_data({"rows": table})
    assert data is not None
    (file,) = data.files
    assert file.name == "_rtap_input_rows"
    assert file.fmt == "ArrowStream"
    assert file.structure == "`k` Nullable(Int32), `price` Nullable(Decimal(9, 2))"
    assert pa.ipc.open_stream(file.data).read_all().equals(table)
    assert external_data({}) is None


def test_the_writer_reads_its_own_writes_on_any_replica() -> None:
    """Quorum inserts, linearized, and sequentially consistent reads (docs/clickhouse-server.md)."""
    assert writer_settings(_settings()) == {
        "insert_quorum": "auto",
        "insert_quorum_parallel": 0,
        "select_sequential_consistency": 1,
    }
    assert writer_settings(WarehouseSettings(backend="server", insert_quorum="3"))["insert_quorum"] == 3


def test_a_calls_settings_go_over_the_writers() -> None:
    consistency = writer_settings(_settings())
    merged = with_writer_settings(consistency, {"insert_deduplication_token": "rtap:events:ab"})
    assert merged == {**consistency, "insert_deduplication_token": "rtap:events:ab"}
    # The reader sends nothing of its own: readonly=1 would refuse a setting it may not change.
    assert with_writer_settings({}, {}) is None
    assert with_writer_settings({}, {"max_execution_time": 5}) == {"max_execution_time": 5}


def test_an_insert_quorum_is_auto_or_a_count() -> None:
    with pytest.raises(ValueError, match="insert_quorum"):
        WarehouseSettings(insert_quorum="majority")


def test_the_engine_takes_the_writers_settings_on_tables_that_are_not_replicated(client: WarehouseClient) -> None:
    """ClickHouse itself (chDB) on one server's tables: the settings exist, and change nothing there."""
    consistency = writer_settings(WarehouseSettings(backend="server", insert_quorum="2"))
    client.command(
        "INSERT INTO {db}.data_gaps (detected_at, topic, `partition`, first_offset, end_offset, records, reason, "
        "pipeline_id) SELECT now64(3), 'clickstream.events', 0, 10, 20, 10, 'retention', 'p'",
        settings={**consistency, "insert_deduplication_token": "rtap:test:quorum"},
    )
    table = client.query_arrow("SELECT sum(records) AS records FROM {db}.data_gaps FINAL", settings=consistency)
    assert table.column("records").to_pylist() == [10]
