"""Query parameters in ClickHouse's escaped text form, and what the engine makes of them."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from rtap.warehouse import WarehouseClient
from rtap.warehouse.parameters import ParameterText, format_parameter


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "\\N"),
        (True, "true"),
        (7, "7"),
        (Decimal("1.500000"), "1.500000"),
        ("tab\there \\ 'quote'", "tab\\there \\\\ 'quote'"),
        (datetime(2024, 1, 2, 3, 4, 5), "2024-01-02 03:04:05"),
        (datetime(2024, 1, 2, 3, 4, 5, 678000), "2024-01-02 03:04:05.678000"),
        (datetime(2024, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))), "2024-01-02 03:04:05"),
        (date(2024, 1, 2), "2024-01-02"),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (["a", "it's", None], "['a', 'it\\'s', NULL]"),
        ({"k": 1}, "{'k':1}"),
        (ParameterText("already\\ttext"), "already\\ttext"),
    ],
)
def test_format_parameter(value: object, text: str) -> None:
    assert format_parameter(value) == text


def test_engine_reads_parameters_back_exactly(client: WarehouseClient) -> None:
    moment = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    rows = client.query_rows(
        "SELECT {t:DateTime64(3, 'UTC')}, {s:String}, {n:Nullable(Int32)}, {a:Array(String)}, {d:Decimal(18, 6)}",
        parameters={"t": moment, "s": "a\tb\\c'd", "n": None, "a": ["x", "it's"], "d": Decimal("2.5")},
    )
    assert rows == [(moment, "a\tb\\c'd", None, ["x", "it's"], Decimal("2.500000"))]
