"""``rtap migrate --print-grants``: the GRANTs for the configured accounts, printed without connecting anywhere."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from rtap import cli
from tests.support.paths import free_port


def test_print_grants_names_the_configured_accounts_and_database(monkeypatch: pytest.MonkeyPatch) -> None:
    # A server nobody listens on: printing the grants must not connect.
    for name, value in {
        "RTAP_CLICKHOUSE_BACKEND": "server",
        "RTAP_CLICKHOUSE_PORT": str(free_port()),
        "RTAP_CLICKHOUSE_DATABASE": "shop",
        "RTAP_CLICKHOUSE_USER": "rtap_writer",
        "RTAP_CLICKHOUSE_READONLY_USER": "analyst",
        "RTAP_CLICKHOUSE_CLUSTER": "main",
    }.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli.app, ["migrate", "--print-grants"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("GRANT ON CLUSTER 'main' SELECT, INSERT, CREATE DATABASE")
    assert lines[0].endswith(" ON shop.* TO `rtap_writer`;")
    assert "GRANT ON CLUSTER 'main' SELECT ON shop.* TO `analyst`;" in lines
    assert all(line.startswith("GRANT ") and line.endswith(";") for line in lines)
