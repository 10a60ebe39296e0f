"""``rtap produce`` rejects impossible arguments with one line and exit 2, before touching Kafka."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from rtap import cli


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "-1", "--count", "10"], "--rate must be >= 0"),
        (["--count", "0"], "--count must be >= 1"),
        (["--count", "10", "--duration", "5"], "give --count or --duration, not both"),
        (["--duration", "-3"], "--duration must be > 0"),
    ],
)
def test_bad_values_are_one_line_and_exit_2(
    args: list[str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Nothing listens here: reaching Kafka would be a bug (the run must be refused first).
    monkeypatch.setenv("RTAP_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    monkeypatch.setattr("sys.argv", ["rtap", "produce", *args])

    with pytest.raises(SystemExit) as exit_info:
        cli.main()

    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("command", [["produce"], ["kafka", "start"], ["kafka", "stop"], ["kafka", "status"]])
def test_commands_have_help(command: list[str]) -> None:
    result = CliRunner().invoke(cli.app, [*command, "--help"])

    assert result.exit_code == 0
    assert "Usage" in result.output
