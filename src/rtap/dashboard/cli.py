"""Commands of the dashboard stage: ``rtap dashboard`` and ``rtap metabase provision``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from rtap.console import console as make_console
from rtap.console import escape
from rtap.settings import Settings

metabase_app = typer.Typer(help="Metabase as code: provision dashboards from dashboards.yaml.", no_args_is_help=True)

_DEFINITION_HELP = "A dashboards YAML file to use instead of the packaged one."


def dashboard(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default: settings, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="Port (default: settings, 8050).")] = None,
    definition: Annotated[Path | None, typer.Option(help=_DEFINITION_HELP)] = None,
    hash_password: Annotated[
        bool,
        typer.Option(
            "--hash-password",
            help="Read a password from stdin, print its hash for RTAP_DASHBOARD_PASSWORD_HASH, and exit.",
        ),
    ] = False,
) -> None:
    """Serve the built-in live dashboard (read-only over the warehouse) until Ctrl-C.

    Beyond loopback (--host) only with RTAP_DASHBOARD_PASSWORD or RTAP_DASHBOARD_PASSWORD_HASH set.
    """
    if hash_password:
        _print_password_hash()
        return
    from rtap import metrics
    from rtap.dashboard.auth import check_exposure
    from rtap.dashboard.definition import load_definition
    from rtap.dashboard.server import serve_dashboard
    from rtap.warehouse import create_client

    settings = Settings()
    if host:
        settings.dashboard.host = host
    check_exposure(settings.dashboard)  # before the warehouse is opened: a refusal is one line, at once
    loaded = load_definition(definition)
    with (
        metrics.serving(settings.metrics, settings.metrics.dashboard_port, metrics.DASHBOARD),
        create_client(settings, readonly=True) as client,
        serve_dashboard(settings, client, port=port, definition=loaded) as server,
    ):
        make_console(markup=True).print(
            f"dashboard: [bold]{escape(server.url)}[/]  (API docs: {escape(server.url)}/docs; Ctrl-C to stop)"
        )
        while server.running:
            time.sleep(0.5)


def _print_password_hash() -> None:
    import getpass
    import sys

    from rtap.dashboard.auth import hash_password
    from rtap.errors import ConfigError

    password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if not password:
        raise ConfigError("no password given (type one, or pipe it in on stdin)")
    typer.echo(hash_password(password))


@metabase_app.command("provision")
def provision(
    url: Annotated[str | None, typer.Option(help="Metabase base URL (default: RTAP_METABASE_URL).")] = None,
    definition: Annotated[Path | None, typer.Option(help=_DEFINITION_HELP)] = None,
) -> None:
    """Create or update the ClickHouse database, the rtap collection, cards and dashboards in Metabase."""
    from rtap.dashboard.definition import load_definition
    from rtap.dashboard.metabase import provision as run_provision

    settings = Settings()
    report = run_provision(settings, load_definition(definition), url or settings.metabase.url)
    console = make_console(markup=True)
    for kind, name, action in report.actions:
        console.print(escape(f"{action:>9}  {kind:<10} {name}"))
    for title, dashboard_url in report.dashboard_urls.items():
        console.print(f"[bold]{escape(title)}[/]: {escape(dashboard_url)}")
