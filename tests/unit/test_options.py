"""Every float option of every rtap command refuses nan and inf at parsing, before its command runs."""

from __future__ import annotations

from typing import Any

import click
import pytest
import typer.main

from rtap import cli
from rtap.options import finite


def _float_options(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every option of ``command`` and its subcommands whose annotation is a float (typer 0.29 runs on its own
    copy of click, so the walk goes by what the objects offer, not by click's classes)."""
    found = []
    if hasattr(command, "list_commands"):  # a group, asked by name: rtap's groups may load commands lazily
        context = click.Context(command)
        for name in command.list_commands(context):
            found += _float_options(command.get_command(context, name), (*path, name))
    for param in command.params:
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is not None and descriptor.annotation in (float, float | None):
            found.append((path, param))
    return found


def test_every_float_option_takes_the_finite_callback() -> None:
    options = _float_options(typer.main.get_command(cli.app))
    assert len(options) >= 10  # validate's four, preflight's, up's rate, produce's two, kafka's and cluster's
    missing = [f"rtap {' '.join(path)} {param.opts[0]}" for path, param in options if param.callback is None]
    assert not missing, f"float options without rtap.options.finite: {missing}"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400"])
def test_validate_refuses_a_number_that_is_not_finite_in_one_line(
    value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.argv", ["rtap", "validate", "--freshness-s", value])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: Invalid value for '--freshness-s'")
    assert len(err.splitlines()) == 1


def test_finite_passes_numbers_and_none_through() -> None:
    assert finite(1.5) == 1.5
    assert finite(None) is None
    with pytest.raises(typer.BadParameter, match="not a finite number"):
        finite(float("nan"))
