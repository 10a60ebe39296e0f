"""The ClickHouse `events` columns against the event contract: drift in either fails here."""

from __future__ import annotations

import re

import pytest

from rtap.contract import PRICE_PRECISION, PRICE_SCALE, ContractField, contract_fields
from rtap.warehouse import WarehouseClient

# Contract fields that may be null in a record but are stored non-null, because the stream job
# writes a value for them: a record without schema_version is a v1 record and is stored as 1.
FILLED_BY_THE_STREAM_JOB = {"schema_version"}


def _columns(client: WarehouseClient, table: str) -> list[tuple[str, str]]:
    rows = client.query_rows(
        "SELECT name, type FROM system.columns WHERE database = '{db}' AND table = {t:String} ORDER BY position",
        parameters={"t": table},
    )
    return [(str(name), str(kind)) for name, kind in rows]


def _unwrap(kind: str) -> tuple[str, bool]:
    """(base type, nullable) of a ClickHouse type, looking through LowCardinality and Nullable."""
    nullable = False
    while True:
        match = re.fullmatch(r"(LowCardinality|Nullable)\((.*)\)", kind)
        if not match:
            return kind, nullable
        nullable = nullable or match.group(1) == "Nullable"
        kind = match.group(2)


def _expected_base(json_type: str, fmt: str | None) -> str:
    """The ClickHouse base type pattern for a contract type."""
    if json_type == "string":
        return {"uuid": "UUID", "date-time": r"DateTime64\(3, 'UTC'\)"}.get(fmt or "", "String")
    if json_type == "number":
        return rf"Decimal\({PRICE_PRECISION}, {PRICE_SCALE}\)"
    if json_type == "integer":
        return r"U?Int(8|16|32|64)"
    raise AssertionError(f"the contract uses a type this test does not map: {json_type}")


def test_events_starts_with_every_contract_field_in_order(client: WarehouseClient) -> None:
    columns = _columns(client, "events")
    fields = contract_fields()
    assert [name for name, _ in columns[: len(fields)]] == [f.name for f in fields]


@pytest.mark.parametrize("field", contract_fields(), ids=lambda f: f.name)
def test_event_column_type_and_nullability_follow_the_contract(client: WarehouseClient, field: ContractField) -> None:
    kind = dict(_columns(client, "events"))[field.name]
    base, nullable = _unwrap(kind)
    assert re.fullmatch(_expected_base(field.json_type, field.format), base), f"{field.name}: {kind}"
    expected_nullable = field.nullable and field.name not in FILLED_BY_THE_STREAM_JOB
    assert nullable is expected_nullable, f"{field.name}: contract nullable={field.nullable}, column {kind}"


def test_filled_fields_are_really_nullable_in_the_contract() -> None:
    nullable = {f.name for f in contract_fields() if f.nullable}
    assert nullable >= FILLED_BY_THE_STREAM_JOB


def test_late_events_has_the_columns_of_events(client: WarehouseClient) -> None:
    assert _columns(client, "late_events") == _columns(client, "events")
