"""``rtap kafka start|stop|status``: the local broker as a background process that outlives the command."""

from __future__ import annotations

from typing import Annotated

import typer

from rtap.console import console
from rtap.options import finite
from rtap.settings import Settings

app = typer.Typer(help="The local single-node Kafka broker (KRaft, run from the Maven jars).", no_args_is_help=True)


@app.command()
def start(
    timeout: Annotated[
        float, typer.Option(min=1, callback=finite, help="Seconds to wait for the broker to answer.")
    ] = 90.0,
) -> None:
    """Start the broker in the background and create rtap's topics."""
    from rtap.ingest.topics import ensure_topics
    from rtap.runtime.broker import LocalKafka

    broker = LocalKafka(Settings(), attached=False)
    pid = broker.start(timeout_s=timeout)
    try:
        created = ensure_topics(broker.kafka_settings())
    except BaseException:
        broker.stop()  # it came up for these topics: nothing is left half-started
        raise
    out = console()
    out.print(f"Kafka is up on {broker.bootstrap_servers} (pid {pid}, data in {broker.files.data})")
    if created:
        out.print(f"created topics: {', '.join(created)}")


@app.command()
def stop(
    timeout: Annotated[
        float, typer.Option(min=1, callback=finite, help="Seconds to wait for a clean shutdown before SIGKILL.")
    ] = 30.0,
) -> None:
    """Stop the broker started by `rtap kafka start` (SIGTERM, then SIGKILL after --timeout)."""
    from rtap.runtime.broker import LocalKafka

    broker = LocalKafka(Settings(), attached=False)
    pid = broker.pid()
    if broker.stop(timeout_s=timeout):
        console().print(f"stopped the Kafka broker (pid {pid})")
    else:
        console().print("no local Kafka broker is running")


@app.command()
def status() -> None:
    """Print the broker's pid, address and topics; exit 0 if it answers, 1 if not."""
    from rtap.runtime.broker import LocalKafka

    state = LocalKafka(Settings(), attached=False).status()
    out = console()
    if not state.running:
        out.print(f"Kafka is not running on {state.address}" + (f": {state.error}" if state.error else ""))
        raise typer.Exit(1)
    pid = state.pid if state.pid is not None else "not started by rtap"
    out.print(f"Kafka is up on {state.address} (pid: {pid})")
    out.print(f"topics: {', '.join(state.topics) if state.topics else '(none)'}")
