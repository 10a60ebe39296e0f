"""Commands of the contract: ``rtap contract check`` (may a new contract version ship?)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rtap.console import console as make_console

app = typer.Typer(help="The versioned event contract (JSON Schema).", no_args_is_help=True)


@app.command("check")
def check(
    new: Annotated[
        Path | None,
        typer.Option(
            "--new", exists=True, dir_okay=False, readable=True, help="A proposed contract version (JSON Schema file)."
        ),
    ] = None,
    base: Annotated[
        int, typer.Option("--base", min=1, help="The shipped version --new must stay compatible with.")
    ] = 1,
) -> None:
    """Refuse a contract version that breaks readers of an earlier one (exit 1, with every reason).

    Compatible means: only new optional fields. Without --new, every shipped version is checked against
    the version before it.
    """
    from rtap.contract.compat import check_compatible, check_shipped, load_candidate, shipped_versions
    from rtap.contract.model import load_schema

    console = make_console()
    if new is not None:
        candidate = load_candidate(new.read_bytes(), label=str(new))
        check_compatible(load_schema(base), candidate, label=str(new))
        console.print(f"{new}: compatible with contract v{base} (only new optional fields)")
        return
    pairs = check_shipped()
    for older, newer in pairs:
        console.print(f"contract v{newer}: compatible with v{older}")
    versions = shipped_versions()
    console.print(f"{len(versions)} shipped version(s) ({', '.join(f'v{v}' for v in versions)}): no breaking change")
