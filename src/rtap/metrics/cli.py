"""Commands of the metrics stage: ``rtap metrics rules``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rtap.settings import Settings

app = typer.Typer(help="Prometheus: the alert rules over rtap's metrics.", no_args_is_help=True)


@app.command("rules")
def rules(
    output: Annotated[Path | None, typer.Option(help="Write the rules file here instead of printing it.")] = None,
) -> None:
    """Print the Prometheus alert rules for the current RTAP_ALERT_* settings (deploy/prometheus/rules.yml
    holds them for the defaults)."""
    from rtap.metrics.rules import render_rules

    text = render_rules(Settings().alerts)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
