"""A ClickHouse server through clickhouse-connect (HTTP): compose, AWS, or ClickHouse Cloud.

``$name`` inputs travel as ClickHouse external data (temporary tables sent with the query) in
ArrowStream format, with a structure derived from the Arrow schema. Sessions are off so that one
client can be shared by threads (a ClickHouse HTTP session runs one query at a time). Query
parameters are bound server-side by clickhouse-connect with its own value formatting.

Read-after-write (docs/clickhouse-server.md): the stream sink reads back what it wrote (the duplicate lookup on
``event_ids``, the windows' partial states it rewrites final rows from, ``pipeline_batches``' high-water marks and
resume offsets). Behind a load balancer each query may reach another replica, so the writing account sends
:func:`writer_settings` with every statement: each INSERT waits for ``insert_quorum`` replicas, linearized
(``insert_quorum_parallel = 0``), and each read runs with ``select_sequential_consistency = 1``, so a replica that
lacks a quorum-written part refuses the read (REPLICA_IS_NOT_IN_QUORUM, retryable: the batch fails and re-runs)
instead of answering from stale data. A pinned HTTP session would not do: a session lives on the one server that
opened it (another replica answers SESSION_NOT_FOUND unless the balancer is sticky), and runs one query at a time.
On one server, and on tables that are not replicated, ClickHouse ignores the quorum settings; on ClickHouse Cloud
(SharedMergeTree) an insert is durable when acknowledged and ``select_sequential_consistency`` makes the replica
catch up with Keeper before it reads. The reading account sends none of them: dashboards read no write of their own.

Every client checks the server's version when it connects (rtap.warehouse.version).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
from clickhouse_connect.driver.exceptions import ClickHouseError
from clickhouse_connect.driver.external import ExternalData

from rtap.errors import WarehouseError
from rtap.settings import WarehouseSettings
from rtap.warehouse import sql as sqltext
from rtap.warehouse.client import WarehouseClient, read_limits
from rtap.warehouse.schema import Schema
from rtap.warehouse.server.errors import translate
from rtap.warehouse.version import check_server_version

EXTERNAL_PREFIX = "_rtap_input_"
_TIMESTAMP_PRECISION = {"s": 0, "ms": 3, "us": 6, "ns": 9}


def connect_kwargs(settings: WarehouseSettings, *, readonly: bool) -> dict[str, Any]:
    """clickhouse-connect ``get_client`` arguments; read-only clients log in as the read-only user.

    No ``database``: it may not exist before ``rtap migrate``, and every rtap query names it via ``{db}``.
    """
    user, password = (
        (settings.readonly_user, settings.readonly_password) if readonly else (settings.user, settings.password)
    )
    return {
        "host": settings.host,
        "port": settings.port,
        "interface": "https" if settings.secure else "http",
        "secure": settings.secure,
        "username": user,
        "password": password.get_secret_value(),
        # The driver takes whole seconds; round up so a small timeout never becomes 0 (= none).
        "connect_timeout": math.ceil(settings.connect_timeout_s),
        "send_receive_timeout": math.ceil(settings.query_timeout_s),
        "autogenerate_session_id": False,
        "client_name": "rtap",
    }


def writer_settings(settings: WarehouseSettings) -> dict[str, Any]:
    """The settings every statement of the writing account carries: quorum inserts, sequentially consistent reads
    (the module docstring says why)."""
    quorum: int | str = int(settings.insert_quorum) if settings.insert_quorum.isdigit() else settings.insert_quorum
    return {"insert_quorum": quorum, "insert_quorum_parallel": 0, "select_sequential_consistency": 1}


def with_writer_settings(consistency: Mapping[str, Any], call: Mapping[str, Any]) -> dict[str, Any] | None:
    """A call's settings over the writer's consistency settings (a call may only add, e.g. a dedup token)."""
    merged = {**consistency, **call}
    return merged or None


def clickhouse_type(arrow_type: pa.DataType, *, nullable: bool) -> str:
    """The ClickHouse column type that reads an Arrow column of ``arrow_type`` losslessly."""
    inner = _base_type(arrow_type)
    wraps_null = not (
        pa.types.is_list(arrow_type)
        or pa.types.is_large_list(arrow_type)
        or pa.types.is_map(arrow_type)
        or pa.types.is_struct(arrow_type)
        or pa.types.is_null(arrow_type)
    )
    if nullable and wraps_null:
        if pa.types.is_dictionary(arrow_type):
            return f"LowCardinality(Nullable({_base_type(arrow_type.value_type)}))"
        return f"Nullable({inner})"
    return inner


def _base_type(t: pa.DataType) -> str:
    simple = {
        pa.int8(): "Int8",
        pa.int16(): "Int16",
        pa.int32(): "Int32",
        pa.int64(): "Int64",
        pa.uint8(): "UInt8",
        pa.uint16(): "UInt16",
        pa.uint32(): "UInt32",
        pa.uint64(): "UInt64",
        pa.float16(): "Float32",
        pa.float32(): "Float32",
        pa.float64(): "Float64",
        pa.bool_(): "Bool",
        pa.string(): "String",
        pa.large_string(): "String",
        pa.binary(): "String",
        pa.large_binary(): "String",
        pa.date32(): "Date32",
        pa.null(): "Nullable(Nothing)",
    }
    if t in simple:
        return simple[t]
    if isinstance(t, pa.UuidType):
        return "UUID"
    if pa.types.is_fixed_size_binary(t):
        return f"FixedString({t.byte_width})"
    if pa.types.is_timestamp(t):
        precision = _TIMESTAMP_PRECISION[t.unit]
        return f"DateTime64({precision}, {sqltext.quote_string(t.tz)})" if t.tz else f"DateTime64({precision})"
    if pa.types.is_decimal(t):
        return f"Decimal({t.precision}, {t.scale})"
    if pa.types.is_dictionary(t):
        return f"LowCardinality({_base_type(t.value_type)})"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"Array({clickhouse_type(t.value_type, nullable=t.value_field.nullable)})"
    if pa.types.is_map(t):
        return f"Map({_base_type(t.key_type)}, {clickhouse_type(t.item_type, nullable=t.item_field.nullable)})"
    if pa.types.is_struct(t):
        fields = ", ".join(
            f"{sqltext.quote_identifier(f.name)} {clickhouse_type(f.type, nullable=f.nullable)}" for f in t
        )
        return f"Tuple({fields})"
    raise WarehouseError(f"no ClickHouse type for the Arrow type {t} of an input table")


def external_structure(schema: pa.Schema) -> str:
    """The ``structure`` of an external table holding ``schema``: ``name Type, ...``."""
    return ", ".join(
        f"{sqltext.quote_identifier(f.name)} {clickhouse_type(f.type, nullable=f.nullable)}" for f in schema
    )


def external_data(inputs: Mapping[str, pa.Table]) -> ExternalData | None:
    """The inputs as clickhouse-connect external data, one ArrowStream file per input."""
    if not inputs:
        return None
    data = ExternalData()
    for name, table in inputs.items():
        sqltext.check_identifier(name, "input name")
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        data.add_file(
            file_name=EXTERNAL_PREFIX + name,
            data=sink.getvalue().to_pybytes(),
            fmt="ArrowStream",
            structure=external_structure(table.schema),
        )
    return data


def bind_inputs(statement: str, inputs: Mapping[str, pa.Table]) -> str:
    """``statement`` with each ``$name`` replaced by the external table that carries that input."""
    return sqltext.substitute_inputs(statement, inputs, lambda name: EXTERNAL_PREFIX + name)


def text_settings(default_format: str, *, readonly: bool) -> dict[str, Any]:
    """What a text query (``rtap sql``) sends: ``default_format`` (an HTTP parameter, not a setting: a FORMAT
    clause in the query stays in charge) and, on the writing account, ``readonly=2`` for this query (the reader
    account is read-only already, and may not change it)."""
    settings: dict[str, Any] = {"default_format": default_format}
    if not readonly:
        settings["readonly"] = 2
    return settings


class ServerClient(WarehouseClient):
    """A client on a ClickHouse server; thread-safe (clickhouse-connect pools HTTP connections)."""

    def __init__(self, settings: WarehouseSettings, *, readonly: bool) -> None:
        super().__init__(
            settings.database, readonly=readonly, limits=read_limits(settings), schema=Schema.from_settings(settings)
        )
        import clickhouse_connect

        self._where = f"ClickHouse server {settings.host}:{settings.port}"
        self._consistency = {} if readonly else writer_settings(settings)
        try:
            self._client = clickhouse_connect.get_client(**connect_kwargs(settings, readonly=readonly))
        except ClickHouseError as exc:
            raise translate(exc, where=self._where) from exc
        try:
            # The driver asked the server's version() as it connected.
            check_server_version(str(self._client.server_version), where=self._where)
        except WarehouseError:
            self._client.close()
            raise

    def _command(
        self, statement: str, inputs: dict[str, pa.Table], parameters: dict[str, Any], settings: dict[str, Any]
    ) -> None:
        sql = bind_inputs(statement, inputs)
        try:
            self._client.command(
                sql,
                parameters=parameters or None,
                settings=with_writer_settings(self._consistency, settings),
                external_data=external_data(inputs),
            )
        except ClickHouseError as exc:
            raise translate(exc, sql, where=self._where) from exc

    def _query_arrow(
        self,
        statement: str,
        inputs: dict[str, pa.Table],
        parameters: dict[str, Any],
        settings: dict[str, Any],
    ) -> pa.Table:
        sql = bind_inputs(statement, inputs)
        try:
            return self._client.query_arrow(
                sql,
                parameters=parameters or None,
                settings=with_writer_settings(self._consistency, settings),
                use_strings=True,
                external_data=external_data(inputs),
            )
        except ClickHouseError as exc:
            raise translate(exc, sql, where=self._where) from exc

    def _query_text(self, statement: str, default_format: str) -> bytes:
        sql = bind_inputs(statement, {})
        try:
            return bytes(self._client.raw_query(sql, settings=text_settings(default_format, readonly=self.readonly)))
        except ClickHouseError as exc:
            raise translate(exc, sql, where=self._where) from exc

    def _insert_arrow(self, table: str, data: pa.Table, dedup_token: str | None) -> None:
        token = {"insert_deduplication_token": dedup_token} if dedup_token is not None else {}
        try:
            self._client.insert_arrow(
                table, data, database=self.database, settings=with_writer_settings(self._consistency, token)
            )
        except ClickHouseError as exc:
            raise translate(exc, f"INSERT INTO {self.database}.{table}", where=self._where) from exc

    def _close(self) -> None:
        self._client.close()
