"""``rtap migrate`` and ``rtap sql``: the warehouse from the command line."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from rtap.settings import Settings


def migrate(
    print_grants: Annotated[
        bool,
        typer.Option(
            "--print-grants",
            help="Print the GRANT statements the writer and reader accounts need on a server, and exit.",
        ),
    ] = False,
) -> None:
    """Create or upgrade the ClickHouse schema; applies only migrations not applied before."""
    from rtap.warehouse import create_client
    from rtap.warehouse.migrate import apply_migrations, load_migrations

    settings = Settings()
    if print_grants:
        from rtap.warehouse.grants import grant_statements

        for statement in grant_statements(settings.warehouse):
            typer.echo(f"{statement};")
        return
    with create_client(settings) as client:
        applied = apply_migrations(client)
    for migration in applied:
        count = len(migration.statements)
        typer.echo(f"applied {migration.label} ({count} statement{'s' if count != 1 else ''})")
    total = len(load_migrations())
    if applied:
        typer.echo(f"database {settings.warehouse.database}: {len(applied)} applied, {total} in total")
    else:
        typer.echo(f"database {settings.warehouse.database} is up to date ({total} migrations)")


def sql(
    query: Annotated[str, typer.Argument(help="One read-only statement; {db} is the rtap database.")],
    output_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="ClickHouse output format when the query has no FORMAT clause "
            "(default: PrettyCompactMonoBlock on a terminal, TabSeparated otherwise).",
        ),
    ] = None,
) -> None:
    """Run a read-only query and print ClickHouse's own output (works while `rtap up` runs). On a terminal, control
    and format characters in the values (a payload's escape sequences) are printed as escapes; into a pipe or a
    file, the output is ClickHouse's, byte for byte."""
    from rtap.console import inert, is_terminal
    from rtap.warehouse import create_client

    terminal = is_terminal(sys.stdout)
    fmt = output_format or ("PrettyCompactMonoBlock" if terminal else "TabSeparated")
    with create_client(Settings(), readonly=True) as client:
        output = client.query_text(query, default_format=fmt)
    if terminal:  # what a producer wrote must not reach the terminal as control sequences (issue #24)
        sys.stdout.write(inert(output.decode("utf-8", errors="backslashreplace"), keep="\n\t"))
    else:
        sys.stdout.buffer.write(output)
    sys.stdout.flush()
