"""``rtap up``: broker, warehouse, stream job, dashboard, collector and generator, started in order, stopped
together.

Everything that can be checked before starting is checked first (Java, jars, free ports), so a bad machine
gives one line and leaves nothing running. Components then start in dependency order; if any of them fails
later (the broker dies, the stream job gives up), everything is stopped in reverse order and the command
exits non-zero. Ctrl-C or SIGTERM stops everything cleanly, the broker child included: the generator first, then
the job once it has committed every record the input topics held at that moment (:func:`drain`, at most
:data:`DRAIN_TIMEOUT_S`; a second Ctrl-C stops at once), so that the tables then account for everything that was
sent (``rtap reconcile`` is exact after a stop); then the rest.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rtap.errors import BrokerError, PipelineError, PortInUseError, RtapError
from rtap.runtime.broker.java import find_java
from rtap.runtime.ports import port_in_use
from rtap.settings import Settings

if TYPE_CHECKING:
    from rtap.runtime.stack.console import OperatorConsole
    from rtap.runtime.stack.profiles import Profile
    from rtap.warehouse import WarehouseClient

log = logging.getLogger("rtap.up")
UP_PID_FILE = "rtap-up.pid"
# How long a stop waits for the job to read what the input topics hold (at 1,000 events/s: about a second).
DRAIN_TIMEOUT_S = 15.0

Offsets = Mapping[tuple[str, int], int]


@dataclass
class Component:
    """A background part of the stack: a thread we watch, and how to stop it."""

    name: str
    thread: threading.Thread
    stop: Callable[[], None]
    error: list[BaseException] = field(default_factory=list)


def preflight(settings: Settings, profile: Profile) -> None:
    """Refuse to start when something is certainly going to fail (one clear line, nothing started)."""
    from rtap.collect.server import check_exposure
    from rtap.dashboard import auth
    from rtap.dashboard.server import check_tls_files
    from rtap.metrics.endpoint import tls_context
    from rtap.stream import ui
    from rtap.stream.spark import connector_jars

    check_exposure(settings.collect, settings.metrics)
    auth.check_exposure(settings.dashboard)
    ui.check_exposure(settings.stream)
    check_tls_files(settings.dashboard)
    if settings.metrics.enabled:
        tls_context(settings.metrics)
    find_java()
    connector_jars(settings.jars_dir / "spark")
    ports = [
        (settings.dashboard.host, settings.dashboard.port, "the dashboard"),
        (settings.collect.host, settings.collect.port, "the collector"),
    ]
    if settings.metrics.enabled and settings.metrics.port:
        ports.append((settings.metrics.host, settings.metrics.port, "the metrics endpoint"))
    for host, port, what in ports + profile.ports(settings):
        if port_in_use(host, port):
            raise PortInUseError(host, port, what)
    profile.preflight(settings)  # last: the external profile's asks the services over the network


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


def run_stack(settings: Settings, *, generator: bool, rate: float, console: OperatorConsole, profile: Profile) -> None:
    """Start the stack, print where to look, show the status line, and supervise it until a signal or a failure.

    ``profile`` runs Kafka and Spark (:mod:`rtap.runtime.stack.profiles`): the job, its SQL and the warehouse are
    the same on every profile, only the settings handed to them point at its processes.
    """
    from rtap import metrics
    from rtap.dashboard import serve_dashboard
    from rtap.ingest.producer import produce_run
    from rtap.ingest.topics import ensure_topics
    from rtap.runtime.stack.collector import CollectorDaemon
    from rtap.runtime.stack.statusline import StatusLine
    from rtap.stream.job import StreamJob, pipeline_id
    from rtap.stream.kafka import LagProbe
    from rtap.stream.spark import build_session
    from rtap.warehouse import create_client, serve_channel
    from rtap.warehouse.migrate import apply_migrations

    preflight(settings, profile)
    stopping, at_once = threading.Event(), threading.Event()  # the first signal, a second one

    def on_signal(*_: object) -> None:
        (at_once if stopping.is_set() else stopping).set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)

    with contextlib.ExitStack() as stack:
        stack.enter_context(_pid_file(settings))
        spark_pool = stack.enter_context(ThreadPoolExecutor(max_workers=1, thread_name_prefix="rtap-spark"))
        spark = None
        if profile.spark_first:
            # Spark's JVM start overlaps the warehouse's and the broker's: first data 41 s -> 35 s after `rtap up`
            # (before the JVM archives of rtap.runtime.jvm). Warming the plan up on a local batch too was measured and
            # dropped: the first Kafka batch still compiled its own code, and first data came at 45 s.
            spark = spark_pool.submit(build_session, settings)
        # The warehouse first: from here on `rtap sql` and `rtap status` read through this process's socket
        # instead of opening chDB themselves, which would make this process wait for the directory's lock.
        client = stack.enter_context(create_client(settings))
        applied = apply_migrations(client)
        if settings.warehouse.backend == "chdb":
            stack.callback(serve_channel(client, settings).close)
        console.done(f"ClickHouse ({settings.warehouse.backend}) ready, {len(applied)} migrations applied")
        started = profile.start(settings, stack)
        settings, brokers_failure = started.settings, started.failure
        for line in started.lines:
            console.done(line)
        if spark is None:
            spark = spark_pool.submit(build_session, settings)
        ensure_topics(settings.kafka)
        # In a process of its own (rtap.runtime.stack.collector); its start overlaps the dashboard's and Spark's.
        collector = CollectorDaemon(settings)
        collector.start(wait=False)
        stack.callback(collector.stop)
        # One endpoint for the whole process: the job, the dashboard and the generator all run in it.
        probe = LagProbe(settings.kafka)
        topic_ends = metrics.KafkaEndOffsets(probe.latest_offsets)
        parts = (metrics.STREAM, metrics.DASHBOARD, metrics.PRODUCER, topic_ends)
        if endpoint := stack.enter_context(metrics.serving(settings.metrics, settings.metrics.port, *parts)):
            console.done(f"Prometheus metrics: {endpoint.url}")

        reader = stack.enter_context(create_client(settings, readonly=True))
        dashboard = serve_dashboard(settings, reader)
        stack.callback(dashboard.stop)
        console.done(f"Dashboard: {dashboard.url}")
        collector.wait_ready()
        console.done(
            f"Collector: {collector.url} writing to {settings.kafka.browser_topic} (demo shop: {collector.url}/shop/)"
        )

        def collector_failure() -> str | None:
            if collector.pid() is None:
                return f"the collector stopped unexpectedly; see {collector.log}"
            return None

        session = spark.result()
        # Asked of the JVM now, before the job runs under its supervisor: once the job is announced the JVM may die
        # at any moment (killed, out of memory), and the supervisor reports and restarts that; a py4j call on this
        # thread after it would end `rtap up` with the traceback instead (seen: the JVM killed -9 right after the
        # job's line, under load, in test_faults_jvm).
        spark_ui = session.sparkContext.uiWebUrl
        job = StreamJob(settings, client, spark=session)
        stream = _background("stream", job.run, job.stop)
        components = [stream]
        stack.callback(_join, stream)
        job.wait_until_started()
        console.done(f"Spark stream job running ({settings.stream.master}), checkpoint in {job.checkpoint}")

        producer = None
        if generator:
            generator_stop = threading.Event()
            producer = _background(
                "generator", lambda: produce_run(settings, rate=rate, stop=generator_stop), generator_stop.set
            )
            components.append(producer)
            stack.callback(_join, producer)
            console.done(f"Generator producing {rate:g} events/s to {settings.kafka.topic}")

        _where_to_look(console, dashboard.url, collector.url, spark_ui)
        stack.enter_context(StatusLine(console, reader, pipeline_id(job.checkpoint)))
        _supervise(components, [brokers_failure, collector_failure], stopping)
        if producer is not None:
            _join(producer)
        positions = functools.partial(committed_positions, client, settings)
        finish_reading(console, probe.latest_offsets, positions, stream.thread.is_alive, at_once)
        console.line("stopping: the stream job, the collector, the dashboard, the broker…")


def _where_to_look(console: OperatorConsole, dashboard_url: str, collector_url: str, spark_ui: str | None) -> None:
    sql = (
        'rtap sql "SELECT window_start, page_url, views, unique_users FROM rtap.page_views_1m FINAL '
        'ORDER BY window_start DESC LIMIT 10"'
    )
    places = [
        ("dashboard", dashboard_url),
        ("demo shop", f"{collector_url}/shop/"),
        ("collector", f"{collector_url}  (docs/collector.md)"),
        ("SQL", sql),
        ("status", "rtap status"),
        ("dead letters", "rtap dlq reasons"),
    ]
    if spark_ui:
        places.append(("Spark UI", spark_ui))
    console.line()
    console.line("Look at it:")
    for label, where in places:
        console.line(f"  {label:<13} {where}")
    console.line("Ctrl-C stops everything.")
    console.line()


def unread(positions: Offsets, ends: Offsets) -> int:
    """Records between the job's committed position and the log end, over every (topic, partition) of ``ends``."""
    return sum(max(0, end - positions.get(key, 0)) for key, end in ends.items())


def committed_positions(client: WarehouseClient, settings: Settings) -> dict[tuple[str, int], int]:
    """Per (topic, partition) of the input topics, the offset after the last record the warehouse accounts for."""
    from rtap.stream.gaps import resume_positions

    return {
        (topic, partition): offset
        for topic in settings.kafka.input_topics
        for partition, offset in resume_positions(client, settings.kafka, topic).items()
    }


def finish_reading(
    console: OperatorConsole,
    log_ends: Callable[[], Offsets],
    positions: Callable[[], Offsets],
    job_running: Callable[[], bool],
    at_once: threading.Event,
) -> None:
    """At a stop: let the job commit what the input topics hold now (:func:`drain`), saying how many records it
    waits for and how many are left. A broker that cannot say where its logs end is said, and not waited for:
    a stop must stop."""
    try:
        ends = log_ends()
    except BrokerError as exc:
        console.line(f"stopping without waiting for the stream job to read what Kafka holds: {exc}")
        return
    if not (left := unread(positions(), ends)):
        return
    console.line(
        f"stopping: the stream job reads the {left:,} records it has not read yet "
        f"(at most {DRAIN_TIMEOUT_S:g} s; Ctrl-C again to stop now)…"
    )
    if left := drain(ends, positions, job_running, at_once):
        console.line(f"{left:,} records left in Kafka: the next start reads them")
    else:
        console.done("every record in the input topics read and committed")


def drain(
    ends: Offsets,
    positions: Callable[[], Offsets],
    job_running: Callable[[], bool],
    at_once: threading.Event,
    *,
    timeout_s: float = DRAIN_TIMEOUT_S,
    poll_s: float = 0.25,
) -> int:
    """Wait until the job has committed every record up to ``ends`` (the log ends when the stop began), for at most
    ``timeout_s``, and only while it runs and ``at_once`` is not set; the records then still unread."""
    deadline = time.monotonic() + timeout_s
    while (left := unread(positions(), ends)) and job_running() and time.monotonic() < deadline:
        if at_once.wait(poll_s):
            break
    return left


def _supervise(
    components: list[Component], failures: list[Callable[[], str | None]], stopping: threading.Event
) -> None:
    """Block until a signal arrives or a component fails; raise on failure so the exit code says so. ``failures``
    are the child processes' checks (the brokers', the collector's): why the stack must stop, or None."""
    while not stopping.wait(1.0):
        for check in failures:
            if (failure := check()) is not None:
                raise PipelineError(failure)
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
