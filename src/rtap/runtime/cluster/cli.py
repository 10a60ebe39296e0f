"""``rtap cluster up|down|status``: the local cluster (three KRaft brokers, a Spark master and workers) as
background processes, and the settings that point every other rtap command at it."""

from __future__ import annotations

from typing import Annotated

import typer

from rtap.console import console as make_console
from rtap.options import finite
from rtap.settings import Settings

app = typer.Typer(
    help="A local Kafka cluster (KRaft brokers) and Spark standalone cluster: the scale-out profile on one machine.",
    no_args_is_help=True,
)


@app.command()
def up(
    brokers: Annotated[int, typer.Option(min=1, max=9, help="Kafka brokers (each also a KRaft controller).")] = 3,
    workers: Annotated[int, typer.Option(min=1, max=16, help="Spark workers.")] = 2,
    worker_cores: Annotated[int, typer.Option(min=1, help="Cores each worker offers to executors.")] = 1,
    worker_memory: Annotated[str, typer.Option(help="Memory each worker offers to executors (Spark syntax).")] = "1g",
    timeout: Annotated[
        float, typer.Option(min=1, callback=finite, help="Seconds to wait for every process to be ready.")
    ] = 300.0,
) -> None:
    """Start the cluster in the background, create rtap's replicated topics, print the settings to use it."""
    from rtap.ingest.topics import ensure_topics
    from rtap.runtime.cluster import LocalCluster

    cluster = LocalCluster(
        Settings(),
        brokers=brokers,
        workers=workers,
        worker_cores=worker_cores,
        worker_memory=worker_memory,
        attached=False,
    )
    cluster.start(timeout_s=timeout)
    try:
        ensure_topics(cluster.pipeline_settings().kafka)
    except BaseException:
        cluster.stop()
        raise
    console = make_console()
    console.print(f"cluster up: {brokers} Kafka brokers, Spark master and {workers} workers (files in {cluster.root})")
    console.print("point rtap at it (e.g. `rtap stream`, `rtap produce`) with:")
    for name, value in cluster.layout.environment().items():
        console.print(f"  export {name}={value}")


@app.command()
def down() -> None:
    """Stop the cluster started by `rtap cluster up` (Spark first, then the brokers)."""
    from rtap.runtime.cluster import LocalCluster

    cluster = LocalCluster.existing(Settings())
    running = cluster.running()
    cluster.stop()
    console = make_console()
    console.print(f"stopped {', '.join(running)}" if running else "no local cluster process was running")


@app.command()
def status() -> None:
    """Print every process of the cluster and what Kafka and the Spark master report; exit 1 if one is down."""
    from rtap.errors import ServiceError
    from rtap.kafka_admin import registered_brokers
    from rtap.runtime.cluster import LocalCluster

    cluster = LocalCluster.existing(Settings())
    console = make_console()
    pids = {f"kafka-{n}": pid for n, pid in enumerate(cluster.kafka.pids(), start=1)} | cluster.spark.pids()
    for name, pid in pids.items():
        console.print(f"  {name:<16} {'pid ' + str(pid) if pid is not None else 'not running'}")
    healthy = all(pid is not None for pid in pids.values())
    try:
        console.print(f"Kafka: {registered_brokers(cluster.kafka.kafka_settings())} brokers registered")
    except ServiceError as error:
        console.print(f"Kafka: {error}")
        healthy = False
    try:
        state = cluster.spark.state()
        console.print(f"Spark master {cluster.layout.master_url}: {state.status}, {state.alive_workers} workers alive")
    except ServiceError as error:
        console.print(f"Spark: {error}")
        healthy = False
    if not healthy:
        raise typer.Exit(1)
