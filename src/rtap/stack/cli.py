"""``rtap up``, ``rtap status`` and ``rtap jvm archive``."""

from __future__ import annotations

import logging
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from rtap.errors import ConfigError
from rtap.settings import Settings

jvm_app = typer.Typer(
    help="Class-data sharing archives that cut the broker's and Spark's JVM start (make install writes them).",
    no_args_is_help=True,
)


class Profile(StrEnum):
    LOCAL = "local"
    CLUSTER = "cluster"


def up(
    no_generator: Annotated[bool, typer.Option("--no-generator", help="Do not start the event generator.")] = False,
    data_dir: Annotated[
        Path | None, typer.Option(help="Where all state lives (default: RTAP_DATA_DIR or .rtap).")
    ] = None,
    rate: Annotated[float, typer.Option(help="Generator rate in events/s.")] = 1000.0,
    profile: Annotated[
        Profile,
        typer.Option(
            help="local: one broker, Spark local[*]. cluster: 3 KRaft brokers (replication 3, min ISR 2) and a "
            "Spark standalone master with 2 workers, all on this machine; same job, same SQL."
        ),
    ] = Profile.LOCAL,
) -> None:
    """Start everything locally: Kafka, ClickHouse (chDB), the Spark job, the dashboard and the generator."""
    from rtap.stack.up import run_stack

    if rate <= 0:
        raise ConfigError(f"--rate must be > 0 for `rtap up`, got {rate}")
    settings = Settings(data_dir=data_dir) if data_dir else Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("py4j", "httpx"):  # httpx: the cluster profile polls the Spark master's JSON endpoint
        logging.getLogger(chatty).setLevel(logging.WARNING)
    run_stack(settings, generator=not no_generator, rate=rate, console=Console(), cluster=profile is Profile.CLUSTER)


def status() -> None:
    """One-screen summary of the local stack; exits 0 only when every part is healthy."""
    from rtap.stack.status import collect

    checks = collect(Settings())
    console = Console()
    for check in checks:
        mark = "[green]✓[/]" if check.ok else "[red]✗[/]"
        console.print(f"{mark} {check.name:<12} {check.detail}", highlight=False)
    if not all(check.ok for check in checks):
        raise typer.Exit(1)


@jvm_app.command("archive")
def archive() -> None:
    """Run the pipeline briefly in a scratch directory and write the JVMs' class-data archives (~40 s)."""
    from rtap.stack.archives import build_archives

    settings = Settings()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    console = Console()
    started = time.monotonic()
    archives = build_archives(settings, progress=lambda step: console.print(f"  {step}"))
    for path in archives:
        console.print(f"[green]✓[/] {path} ({path.stat().st_size / 2**20:.0f} MiB)")
    console.print(f"written in {time.monotonic() - started:.0f} s")
