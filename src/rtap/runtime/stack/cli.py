"""``rtap up``, ``rtap status``, ``rtap preflight`` and ``rtap jvm archive``."""

from __future__ import annotations

import logging
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from rtap.console import console as make_console
from rtap.errors import ConfigError
from rtap.options import finite
from rtap.settings import Settings

jvm_app = typer.Typer(
    help="Class-data sharing archives that cut the broker's and Spark's JVM start (make install writes them).",
    no_args_is_help=True,
)


class Profile(StrEnum):
    """``--profile``'s choices: the names of ``rtap.runtime.stack.profiles.PROFILES`` (imported only by `rtap up`)."""

    LOCAL = "local"
    CLUSTER = "cluster"
    EXTERNAL = "external"


def up(
    generator: Annotated[
        bool | None,
        typer.Option(
            "--generator/--no-generator",
            help="Run the event generator (default: on, except with --profile external: a team's cluster gets "
            "generated events only when asked).",
        ),
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Where all state lives (default: RTAP_DATA_DIR or .rtap).")
    ] = None,
    rate: Annotated[float, typer.Option(callback=finite, help="Generator rate in events/s.")] = 1000.0,
    profile: Annotated[
        Profile,
        typer.Option(
            help="local: one broker, Spark local[*]. cluster: 3 KRaft brokers (replication 3, min ISR 2) and a "
            "Spark standalone master with 2 workers, all on this machine; same job, same SQL. external: the Kafka "
            "cluster, Spark master and ClickHouse the RTAP_* settings name, started by nobody here, checked first "
            "(`rtap preflight`, docs/external.md)."
        ),
    ] = Profile.LOCAL,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also print INFO logs on the console (a line per micro-batch).")
    ] = False,
) -> None:
    """Start everything locally: Kafka, ClickHouse (chDB), the Spark job, the dashboard and the generator; with
    --profile external, only rtap's own processes, on the services the settings name (docs/external.md).

    The console shows the start-up steps, a status line (events/s, Kafka lag, freshness, dead letters, late,
    duplicates) and warnings; Spark's, Kafka clients' and INFO logs go to DATA_DIR/logs/rtap-up.log.
    """
    from rtap.runtime.stack.console import operator_output
    from rtap.runtime.stack.profiles import PROFILES
    from rtap.runtime.stack.up import run_stack

    if rate <= 0:
        raise ConfigError(f"--rate must be > 0 for `rtap up`, got {rate}")
    settings = Settings(data_dir=data_dir) if data_dir else Settings()
    with operator_output(settings, verbose=verbose) as output:
        output.console.line(f"log: {output.log_path} (Spark, Kafka clients, one line per micro-batch)")
        run_stack(
            settings,
            generator=profile is not Profile.EXTERNAL if generator is None else generator,
            rate=rate,
            console=output.console,
            profile=PROFILES[profile.value],
        )
        output.console.line(f"stopped; the log is {output.log_path}")


def status() -> None:
    """One-screen summary of the local stack; exits 0 only when every part is healthy."""
    from rtap.console import escape
    from rtap.runtime.stack.status import collect

    checks = collect(Settings())
    console = make_console(markup=True)
    for check in checks:
        mark = "[green]✓[/]" if check.ok else "[red]✗[/]"
        console.print(f"{mark} {check.name:<12} {escape(check.detail)}")
    if not all(check.ok for check in checks):
        raise typer.Exit(1)


def preflight(
    create_topics: Annotated[
        bool,
        typer.Option(
            "--create-topics",
            help="First create the missing input and dead-letter topics (RTAP_KAFKA_PARTITIONS, "
            "RTAP_KAFKA_REPLICATION_FACTOR, RTAP_KAFKA_RETENTION_HOURS); the login needs CREATE.",
        ),
    ] = False,
    timeout_s: Annotated[
        float,
        typer.Option(
            "--timeout-s",
            min=1,
            callback=finite,
            help="How long Kafka and the Spark master get to answer (ClickHouse: RTAP_CLICKHOUSE_CONNECT_TIMEOUT_S).",
        ),
    ] = 10.0,  # rtap.runtime.stack.preflight.PREFLIGHT_TIMEOUT_S, imported only when the command runs
) -> None:
    """Check the Kafka cluster, ClickHouse and the Spark master the settings name, starting none of them.

    One line per problem and exit 1 (unreachable, a login or certificate refused, a missing topic or ACL, a
    missing grant, a server too old); a table and exit 0 when all is ready. `rtap up --profile external` runs it
    first. See docs/external.md.
    """
    from rich.table import Table

    from rtap.console import escape
    from rtap.ingest.topics import ensure_topics
    from rtap.runtime.stack.preflight import require_services

    # clickhouse-connect logs a failed connection on stderr itself, before the check's own line says why.
    logging.getLogger("clickhouse_connect").setLevel(logging.CRITICAL)
    settings = Settings()
    console = make_console(markup=True)
    if create_topics:
        for name in ensure_topics(settings.kafka, timeout_s):
            console.print(f"created topic {escape(name)}")
    table = Table("", "check", "detail", title="rtap preflight: ready")
    for check in require_services(settings, timeout_s):
        table.add_row("[green]✓[/]", escape(check.name), escape(check.detail))
    console.print(table)


@jvm_app.command("archive")
def archive() -> None:
    """Run the pipeline briefly in a scratch directory and write the JVMs' class-data archives (~40 s)."""
    from rtap.runtime.stack.archives import build_archives

    settings = Settings()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    console = make_console()
    started = time.monotonic()
    archives = build_archives(settings, progress=lambda step: console.print(f"  {step}"))
    for path in archives:
        console.print(f"✓ {path} ({path.stat().st_size / 2**20:.0f} MiB)")
    console.print(f"written in {time.monotonic() - started:.0f} s")
