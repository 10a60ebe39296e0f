"""The server version floor: the comparison, the one-line refusal, and chDB's own engine above it."""

from __future__ import annotations

import pytest

from rtap.errors import ServerVersionError, WarehouseError
from rtap.warehouse import MIN_SERVER_VERSION, WarehouseClient
from rtap.warehouse.version import check_server_version, parse_version


@pytest.mark.parametrize(
    ("version", "parsed"),
    [("24.7.1.2915", (24, 7)), ("24.10.2.80", (24, 10)), ("25.3.1.2703-lts", (25, 3)), ("26.9", (26, 9))],
)
def test_versions_parse_to_major_and_minor(version: str, parsed: tuple[int, int]) -> None:
    assert parse_version(version) == parsed


@pytest.mark.parametrize("version", ["24.7.1.2915", "24.10.2.80", "25.1.1.1", "26.9.2.1"])
def test_the_floor_and_newer_are_accepted(version: str) -> None:
    check_server_version(version, where="ClickHouse server ch:8123")


@pytest.mark.parametrize("version", ["24.6.2.17", "24.3.12.75-lts", "23.12.1.1", "9.99.1.1"])
def test_older_servers_are_refused_in_one_line(version: str) -> None:
    with pytest.raises(ServerVersionError) as caught:
        check_server_version(version, where="ClickHouse server ch:8123")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"ClickHouse server ch:8123 runs ClickHouse {version}; rtap needs 24.7 or later")
    assert isinstance(caught.value, WarehouseError)
    assert not caught.value.retryable


def test_minor_versions_compare_as_numbers_not_text() -> None:
    # "24.10" < "24.7" as text; 24.10 is the newer release.
    check_server_version("24.10.1.1", where="x")
    assert MIN_SERVER_VERSION == (24, 7)


def test_an_unreadable_version_is_refused() -> None:
    with pytest.raises(ServerVersionError, match="cannot read a ClickHouse version"):
        parse_version("unknown")


def test_the_engine_chdb_embeds_is_above_the_floor(client: WarehouseClient) -> None:
    ((version,),) = client.query_rows("SELECT version()")
    check_server_version(str(version), where="chDB")
    assert parse_version(str(version)) >= MIN_SERVER_VERSION
