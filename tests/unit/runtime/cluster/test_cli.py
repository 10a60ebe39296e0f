"""``rtap cluster``: every command has help; without a started cluster, status and down say so in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rtap import cli


@pytest.mark.parametrize("command", [["cluster"], ["cluster", "up"], ["cluster", "down"], ["cluster", "status"]])
def test_commands_have_help(command: list[str]) -> None:
    result = CliRunner().invoke(cli.app, [*command, "--help"])

    assert result.exit_code == 0
    assert "Usage" in result.output


@pytest.mark.parametrize("command", ["status", "down"])
def test_without_a_cluster_the_error_names_the_command_that_starts_one(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RTAP_DATA_DIR", str(tmp_path))
    monkeypatch.setattr("sys.argv", ["rtap", "cluster", command])

    with pytest.raises(SystemExit) as exit_info:
        cli.main()

    assert exit_info.value.code != 0
    err = capsys.readouterr().err.strip()
    assert "rtap cluster up" in err
    assert len(err.splitlines()) == 1
