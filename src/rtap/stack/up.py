"""``rtap up``: broker, warehouse, stream job, dashboard and generator, started in order, stopped together.

Everything that can be checked before starting is checked first (Java, jars, free ports), so a bad machine
gives one line and leaves nothing running. Components then start in dependency order; if any of them fails
later (the broker dies, the stream job gives up), everything is stopped in reverse order and the command
exits non-zero. Ctrl-C or SIGTERM stops everything cleanly, the broker child included.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from rich.console import Console

from rtap.broker import LocalKafka
from rtap.broker.java import find_java
from rtap.broker.local import port_in_use
from rtap.errors import PipelineError, PortInUseError, RtapError
from rtap.settings import Settings

log = logging.getLogger("rtap.up")
UP_PID_FILE = "rtap-up.pid"


@dataclass
class Component:
    """A background part of the stack: a thread we watch, and how to stop it."""

    name: str
    thread: threading.Thread
    stop: Callable[[], None]
    error: list[BaseException] = field(default_factory=list)


def preflight(settings: Settings) -> None:
    """Refuse to start when something is certainly going to fail (one clear line, nothing started)."""
    from rtap.broker.config import kafka_classpath
    from rtap.stream.spark import connector_jars

    find_java()
    kafka_classpath(settings)
    connector_jars(settings.jars_dir / "spark")
    ports = [
        (settings.kafka.host, settings.kafka.port, "the Kafka listener"),
        (settings.kafka.host, settings.kafka.controller_port, "the Kafka controller"),
        (settings.dashboard.host, settings.dashboard.port, "the dashboard"),
    ]
    for host, port, what in ports:
        if port_in_use(host, port):
            raise PortInUseError(host, port, what)


def _background(name: str, target: Callable[[], object], stop: Callable[[], None]) -> Component:
    component = Component(name, threading.Thread(name=f"rtap-{name}", daemon=True), stop)

    def run() -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - recorded and re-raised by the supervisor, never swallowed
            component.error.append(exc)

    component.thread.run = run  # type: ignore[method-assign]
    component.thread.start()
    return component


@contextlib.contextmanager
def _pid_file(settings: Settings) -> Iterator[None]:
    run_dir = settings.paths.run
    run_dir.mkdir(parents=True, exist_ok=True)
    pid_file = run_dir / UP_PID_FILE
    pid_file.write_text(f"{os.getpid()}\n")
    try:
        yield
    finally:
        pid_file.unlink(missing_ok=True)


def run_stack(settings: Settings, *, generator: bool, rate: float, console: Console) -> None:
    """Start the stack, print where to look, and supervise it until a signal or a failure."""
    from rtap.dashboard import serve_dashboard
    from rtap.ingest.producer import produce_run
    from rtap.ingest.topics import ensure_topics
    from rtap.stream.job import StreamJob
    from rtap.warehouse import create_client, serve_channel
    from rtap.warehouse.migrate import apply_migrations

    preflight(settings)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())

    with contextlib.ExitStack() as stack:
        stack.enter_context(_pid_file(settings))
        kafka = stack.enter_context(LocalKafka(settings))
        console.print(f"[green]✓[/] Kafka broker on {kafka.bootstrap_servers} (pid {kafka.pid()})")
        ensure_topics(settings.kafka)

        client = stack.enter_context(create_client(settings))
        applied = apply_migrations(client)
        console.print(f"[green]✓[/] ClickHouse ({settings.warehouse.backend}) ready, {len(applied)} migrations applied")
        if settings.warehouse.backend == "chdb":
            stack.callback(serve_channel(client, settings).close)

        reader = stack.enter_context(create_client(settings, readonly=True))
        dashboard = serve_dashboard(settings, reader)
        stack.callback(dashboard.stop)
        console.print(f"[green]✓[/] Dashboard: [bold]{dashboard.url}[/]")

        job = StreamJob(settings, client)
        components = [_background("stream", job.run, job.stop)]
        stack.callback(_join, components[0])
        job.wait_until_started()
        console.print(
            f"[green]✓[/] Spark stream job running ({settings.stream.master}), checkpoint in {job.checkpoint}"
        )

        if generator:
            generator_stop = threading.Event()
            producer = _background(
                "generator", lambda: produce_run(settings, rate=rate, stop=generator_stop), generator_stop.set
            )
            components.append(producer)
            stack.callback(_join, producer)
            console.print(f"[green]✓[/] Generator producing {rate:g} events/s to {settings.kafka.topic}")

        console.print(
            "\nLook at it:\n"
            f"  dashboard   {dashboard.url}\n"
            '  SQL         rtap sql "SELECT window_start, page_url, views, unique_users '
            'FROM rtap.page_views_1m FINAL ORDER BY window_start DESC LIMIT 10"\n'
            "  status      rtap status\n"
            "  Spark UI    http://127.0.0.1:4040\n"
            "Ctrl-C stops everything."
        )
        _supervise(components, kafka, stopping)


def _supervise(components: list[Component], kafka: LocalKafka, stopping: threading.Event) -> None:
    """Block until a signal arrives or a component fails; raise on failure so the exit code says so."""
    while not stopping.wait(1.0):
        if kafka.pid() is None:
            raise PipelineError("the Kafka broker stopped unexpectedly; see its log in the data directory")
        for component in components:
            if component.error:
                raise _as_rtap_error(component)
            if not component.thread.is_alive() and component.name == "stream":
                raise PipelineError("the stream job stopped unexpectedly")


def _as_rtap_error(component: Component) -> RtapError:
    error = component.error[0]
    if isinstance(error, RtapError):
        return error
    return PipelineError(f"{component.name} failed: {error}")


def _join(component: Component) -> None:
    component.stop()
    component.thread.join(timeout=60)
    if component.thread.is_alive():
        log.error("%s did not stop within 60 s", component.name)
