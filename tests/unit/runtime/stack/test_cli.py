"""``rtap up`` refuses a bad ``--rate`` in one line with exit 2, before it starts anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtap import cli


def _started(*args: object, **kwargs: object) -> None:
    raise AssertionError("rtap up started the stack with a rate it should have refused")


@pytest.mark.parametrize("rate", ["nan", "inf", "-inf", "0", "-1"])
def test_a_bad_rate_is_refused_before_anything_starts(
    rate: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Tripwires on the first two things `rtap up` does after its checks: taking over the output (the log file),
    # then starting Kafka, Spark, the dashboard and the generator. A refusal never reaches either.
    monkeypatch.setattr("rtap.runtime.stack.console.operator_output", _started)
    monkeypatch.setattr("rtap.runtime.stack.up.run_stack", _started)
    monkeypatch.setenv("RTAP_DATA_DIR", str(tmp_path))
    monkeypatch.setattr("sys.argv", ["rtap", "up", "--rate", rate])

    with pytest.raises(SystemExit) as exit_info:
        cli.main()

    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --rate must be") or err.startswith("error: Invalid value for '--rate'")
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "logs").exists()
