"""What a failing warehouse shows a dashboard client: a status and a reason naming the panel, never the engine's
message, a table name, a path or a host (those go to the server's log, where the operator reads them)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rtap.dashboard.api import create_app
from rtap.dashboard.definition import parse_definition
from rtap.settings import DashboardSettings, Settings
from rtap.warehouse import WarehouseClient, serve_channel
from rtap.warehouse.chdb.channel import ChannelClient, socket_path
from tests.support.seed import seeded_warehouse

# What an error body must never carry: the engine's own words, and the names of things on the server.
INTERNALS = ("DB::Exception", "Code:", "no_such_table", "rtap.", "chdb", "/", "pid", "127.0.0.1", "localhost")

BROKEN = parse_definition(
    {
        "dashboards": [
            {
                "id": "broken",
                "title": "Broken",
                "panels": [
                    {
                        "id": "missing_table",
                        "title": "Reads a table that is not there",
                        "chart": "number",
                        "refresh_seconds": 5,
                        "sql": "SELECT count() FROM {db}.no_such_table "
                        "WHERE t >= {from:DateTime64(3,'UTC')} AND t < {to:DateTime64(3,'UTC')}",
                    }
                ],
            }
        ]
    }
)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, WarehouseClient, WarehouseClient]]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("rtap-dashboard-errors"))
    with seeded_warehouse(settings, datetime.now(UTC) - timedelta(seconds=1)) as (writer, reader):
        yield settings, writer, reader


def assert_no_internals(detail: str, *also: str) -> None:
    for secret in (*INTERNALS, *also):
        assert secret not in detail, f"the body shows {secret!r}: {detail}"


def test_a_failing_panel_names_the_panel_and_logs_the_engine_message(
    warehouse: tuple[Settings, WarehouseClient, WarehouseClient], caplog: pytest.LogCaptureFixture
) -> None:
    settings, _, reader = warehouse
    api = TestClient(create_app(settings, reader, BROKEN))
    with caplog.at_level(logging.WARNING, logger="rtap.dashboard"):
        response = api.get("/api/panels/missing_table")
    assert response.status_code == 502
    detail = response.json()["detail"]
    assert "missing_table" in detail
    assert_no_internals(detail.replace("'missing_table'", ""), str(settings.data_dir))
    # The operator still learns why, from the server's log.
    assert any("no_such_table" in record.getMessage() for record in caplog.records), caplog.text


def test_an_unreachable_warehouse_is_a_503_without_its_address(
    warehouse: tuple[Settings, WarehouseClient, WarehouseClient], caplog: pytest.LogCaptureFixture
) -> None:
    """A reader on the owner's socket (as ``rtap dashboard`` beside ``rtap up``) whose owner has gone away."""
    settings, writer, _ = warehouse
    channel = serve_channel(writer, settings)
    reader = ChannelClient.connect(socket_path(settings), settings, owner_pid=None)
    assert reader is not None
    unshared = settings.model_copy(update={"dashboard": DashboardSettings(cache_ttl_s=0)})  # every request asks
    api = TestClient(create_app(unshared, reader))
    assert api.get("/api/health").status_code == 200
    channel.close()
    with caplog.at_level(logging.WARNING, logger="rtap.dashboard"):
        responses = [api.get("/api/health"), api.get("/api/panels/active_users")]
    reader.close()
    for response in responses:
        assert response.status_code == 503, response.text
        assert_no_internals(response.json()["detail"], str(settings.data_dir), Path(settings.data_dir).name)
    assert any(str(settings.data_dir) in record.getMessage() for record in caplog.records), caplog.text


def test_an_echoed_value_is_short(warehouse: tuple[Settings, WarehouseClient, WarehouseClient]) -> None:
    """A refusal quotes the bad value so the client recognises it, but a megabyte sent is not a megabyte echoed."""
    settings, _, reader = warehouse
    api = TestClient(create_app(settings, reader))
    long_value = api.get("/api/panels/active_users", params={"to": "x" * 5000})
    for response in (long_value, api.get("/api/panels/" + "p" * 5000)):
        assert response.status_code in {400, 404}
        assert len(response.text) < 300, response.text
