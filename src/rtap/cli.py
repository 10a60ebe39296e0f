"""The ``rtap`` command line: wiring only.

Each pipeline stage owns its commands in ``rtap/<stage>/cli.py``; this module registers them and turns
every :class:`~rtap.errors.RtapError`, and every bad command-line value, into one line on stderr and a
non-zero exit. Stage modules import heavy dependencies (pyspark, chdb, pyarrow, rich) inside their commands so
that ``rtap --help`` stays instant and ``rtap sql`` stays light.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import typer

from rtap.console import console, escape
from rtap.errors import DependencyError, RtapError

app = typer.Typer(
    name="rtap",
    help="rtap: real-time clickstream analytics (Kafka -> Spark -> ClickHouse -> dashboards).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Each stage registers its own commands; keep this list sorted by pipeline stage.
    from rtap.collect import cli as collect_cli
    from rtap.contract import cli as contract_cli
    from rtap.dashboard import cli as dashboard_cli
    from rtap.ingest import cli as ingest_cli
    from rtap.metrics import cli as metrics_cli
    from rtap.ops import cli as ops_cli
    from rtap.runtime.broker import cli as broker_cli
    from rtap.runtime.cluster import cli as cluster_cli
    from rtap.runtime.stack import cli as stack_cli
    from rtap.stream import cli as stream_cli
    from rtap.warehouse import cli as warehouse_cli

    app.command("up")(stack_cli.up)
    app.command("status")(stack_cli.status)
    app.command("preflight")(stack_cli.preflight)
    app.add_typer(contract_cli.app, name="contract")
    app.add_typer(broker_cli.app, name="kafka")
    app.add_typer(cluster_cli.app, name="cluster")
    app.add_typer(stack_cli.jvm_app, name="jvm")
    app.command("produce")(ingest_cli.produce)
    app.command("collect")(collect_cli.collect)
    app.command("migrate")(warehouse_cli.migrate)
    app.command("sql")(warehouse_cli.sql)
    app.command("stream")(stream_cli.stream)
    app.add_typer(ops_cli.dlq_app, name="dlq")
    app.command("dashboard")(dashboard_cli.dashboard)
    app.add_typer(dashboard_cli.metabase_app, name="metabase")
    app.command("validate")(ops_cli.validate)
    app.command("reconcile")(ops_cli.reconcile)
    app.command("backup")(ops_cli.backup)
    app.command("restore")(ops_cli.restore)
    _register_bench()
    app.add_typer(metrics_cli.app, name="metrics")


def _register_bench() -> None:
    """``rtap bench`` lives outside the shipped package (bench/rtap_bench, installed by `make install`)."""
    try:
        from rtap_bench import cli as bench_cli
    except ModuleNotFoundError as missing:
        if missing.name != "rtap_bench":
            raise

        def bench() -> None:
            """Benchmarks (in a development install: `make install` from a clone of the repository)."""
            raise DependencyError("rtap bench needs the benchmarks, installed by `make install` (pip install -e bench)")

        app.command("bench")(bench)
        return
    app.command("bench")(bench_cli.bench)


_register()


def _fail(message: str, exit_code: int) -> NoReturn:
    console(stderr=True, markup=True).print(f"[bold red]error:[/] {escape(message)}")
    sys.exit(exit_code)


def main() -> None:
    """Console entry point: one clear line and a non-zero exit for every deliberate error.

    Typer runs outside its standalone mode so that a bad option value is one line too; standalone, it draws a
    box wrapped at the guessed width (three lines for one sentence, more in a narrow terminal).
    """
    from pydantic import ValidationError

    try:
        code = app(standalone_mode=False, prog_name="rtap")  # also under `python -m rtap`
    except RtapError as error:
        _fail(str(error), error.exit_code)
    except ValidationError as error:  # a bad RTAP_* setting: the settings module says which, in one line
        from rtap.settings import describe_invalid

        _fail(describe_invalid(error), 2)
    except typer.TyperException as error:  # a usage error: unknown option, a value of the wrong type
        if not error.format_message().strip():  # a group called without a command: its help was printed
            sys.exit(error.exit_code)
        context = getattr(error, "ctx", None)
        hint = f" (see `{context.command_path} --help`)" if context is not None else ""
        _fail(error.format_message() + hint, error.exit_code)
    except typer.Abort:
        _fail("aborted", 1)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
