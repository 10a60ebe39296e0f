"""Drain-side measurements over a pre-filled topic: raw consumer (B2), Spark pass-through (B3), warehouse
insert (B4), the full rtap job (P) and ClickHouse's Kafka table engine (K).

B3 and P are measured the same way, in steady state: both read the topic in micro-batches of the same size
(``maxOffsetsPerTrigger`` = ``settings.stream.max_batch_records``), and the rate is the records of every batch
after the first over the time from the end of the first batch to the end of the last (:func:`steady_state`).
The first batch carries each one's start-up (for P, ~12 s of Spark generating and compiling code; for B3, the
source's first planning), which a one-batch drain would divide by the records and call throughput. Each
drain's whole time, first batch included, is kept beside it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rtap.errors import BrokerError, PipelineError
from rtap.runtime.process import die_with_parent
from rtap.settings import Settings, child_environment
from rtap_bench.procfs import tree_cpu_s, tree_peak_rss_mb
from rtap_bench.produce import Sample
from rtap_bench.results import worker_result

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import SparkSession

    from rtap.warehouse import WarehouseClient

POLL_S = 0.5
SPARK_EVENTS = "spark-events"
_PROGRESS_EVENT = "org.apache.spark.sql.streaming.StreamingQueryListener$QueryProgressEvent"
_BATCH_LOG = re.compile(r"batch \d+: (\d+) records .* in (\d+) ms \(spark (\d+) ms, warehouse (-?\d+) ms")


def time_split(data_dir: Path, log_path: Path | None = None) -> dict[str, int]:
    """Where a job's batch time went, summed over its batches (ms).

    From Spark's event log: each phase of ``durationMs`` (``addBatch`` is the whole ``foreachBatch`` call,
    ``latestOffset``/``getBatch`` read Kafka's offsets, ``walCommit``/``commitOffsets`` write the checkpoint),
    and the first batch's ``triggerExecution`` and records apart (``first_batch_ms``, ``first_batch_records``:
    it carries the code generation, which the cost model leaves out). From the job's log: inside
    ``addBatch``, Spark's stage to Arrow (``foreach_spark``), and the warehouse writes (``foreach_warehouse``),
    which run beside the next batch's ``addBatch`` while the job is behind; ``log_path``: the job's log (default
    ``data_dir/stream.log``).
    """
    totals: dict[str, int] = {}
    for path in sorted((data_dir / SPARK_EVENTS).rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        for line in path.read_text(errors="replace").splitlines():
            if _PROGRESS_EVENT not in line:
                continue
            progress = json.loads(line).get("progress", {})
            if "batches" not in totals:
                totals["first_batch_ms"] = int(progress.get("durationMs", {}).get("triggerExecution", 0))
                totals["first_batch_records"] = int(progress.get("numInputRows", 0))
            totals["batches"] = totals.get("batches", 0) + 1
            for phase, ms in progress.get("durationMs", {}).items():
                totals[phase] = totals.get(phase, 0) + int(ms)
    log_path = log_path or data_dir / "stream.log"
    if log_path.exists():
        for match in _BATCH_LOG.finditer(log_path.read_text(errors="replace")):
            totals["foreach_spark"] = totals.get("foreach_spark", 0) + int(match.group(3))
            totals["foreach_warehouse"] = totals.get("foreach_warehouse", 0) + int(match.group(4))
    return totals


JOB_STOP_TIMEOUT_S = 120.0


def raw_consume(settings: Settings, expected: int, timeout_s: float) -> Sample:
    """B2: a fresh consumer group reads the topic from the beginning until ``expected`` records arrived."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            **settings.kafka.client_config(),
            "group.id": f"rtap-bench-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )
    consumer.subscribe([settings.kafka.topic])
    read = 0
    started = None
    deadline = time.monotonic() + timeout_s
    try:
        while read < expected:
            if time.monotonic() > deadline:
                raise BrokerError(f"B2: read {read} of {expected} records in {timeout_s:.0f} s")
            batch = consumer.consume(10_000, 0.5)
            if batch and started is None:
                started = time.perf_counter()  # the group join is set-up, not draining
            for message in batch:
                if message.error() is None:
                    read += 1
    finally:
        consumer.close()
    return Sample(read, time.perf_counter() - (started or time.perf_counter()))


@dataclass(frozen=True)
class BatchEnd:
    """One micro-batch of a drain: its input records and when it ended (epoch s)."""

    rows: int
    ended: float


def steady_state(batches: list[BatchEnd]) -> Sample | None:
    """Records after the first batch over the time from the first batch's end to the last's (None: one batch)."""
    ordered = sorted((b for b in batches if b.rows), key=lambda b: b.ended)
    if len(ordered) < 2:
        return None
    return Sample(sum(b.rows for b in ordered[1:]), ordered[-1].ended - ordered[0].ended)


@dataclass(frozen=True)
class Drain:
    """One drain of the topic: steady state (see the module docstring) and whole (first batch included)."""

    steady: Sample
    whole: Sample
    batches: list[BatchEnd]


def _drain(batches: list[BatchEnd], whole: Sample, name: str) -> Drain:
    steady = steady_state(batches)
    if steady is None:
        raise PipelineError(f"{name}: the topic fit in one micro-batch, so there is no steady state to time")
    return Drain(steady, whole, batches)


def spark_drain(spark: SparkSession, settings: Settings, checkpoint: Path) -> Drain:
    """B3: Kafka source -> noop sink, ``availableNow``: what Spark alone costs to read the topic, batch by batch."""
    reader = spark.readStream.format("kafka").option("subscribe", settings.kafka.topic)
    reader = reader.option("startingOffsets", "earliest").option(
        "maxOffsetsPerTrigger", str(settings.stream.max_batch_records)
    )
    for key, value in settings.kafka.java_client_config().items():  # Spark's source is Kafka's Java client
        reader = reader.option(f"kafka.{key}", value)
    started = time.perf_counter()
    query = (
        reader.load()
        .writeStream.format("noop")
        .option("checkpointLocation", str(checkpoint))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    elapsed = time.perf_counter() - started
    # A progress per batch: its trigger's start and how long the trigger took (Spark keeps the last 100).
    batches = [
        BatchEnd(
            int(p["numInputRows"]),
            datetime.fromisoformat(p["timestamp"]).timestamp() + p["durationMs"]["triggerExecution"] / 1000,
        )
        for p in query.recentProgress
    ]
    return _drain(batches, Sample(sum(b.rows for b in batches), elapsed), "B3")


def warehouse_insert(client: WarehouseClient, rows: pa.Table, table: str) -> Sample:
    """B4: ``insert_arrow`` of the job's own event rows into a fresh copy of ``events`` (no dedup window hit)."""
    client.command(f"CREATE TABLE {{db}}.{table} AS {{db}}.events")
    try:
        started = time.perf_counter()
        client.insert_arrow(table, rows)
        elapsed = time.perf_counter() - started
    finally:
        client.command(f"DROP TABLE IF EXISTS {{db}}.{table}")
    return Sample(rows.num_rows, elapsed)


@dataclass(frozen=True)
class JobRun:
    """P: one run of the full job over the pre-filled topic."""

    drain: Drain  # whole: first batch started -> all input committed (pipeline_batches)
    job_rows_per_s: float  # the job's own figure: input rows / summed batch durations
    startup_s: float  # process start -> first batch started
    peak_rss_mb: float | None  # the job's Python process plus its Spark JVM
    time_split: dict[str, int]  # see time_split()


_PROGRESS = (
    "SELECT toUInt64(sum(input_rows)), count(), toFloat64(min(started_at)), toFloat64(max(finished_at)), "
    "toUInt64(sum(duration_ms)) FROM {db}.pipeline_batches FINAL"
)
_BATCH_ENDS = "SELECT input_rows, toFloat64(finished_at) FROM {db}.pipeline_batches FINAL ORDER BY finished_at"


@contextmanager
def spark_process(
    command: list[str], settings: Settings, log_path: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``command`` (a process that runs a Spark job) in its own process group on ``settings``, with Spark's event
    log in ``data_dir/spark-events``; its output in ``log_path``; stopped (SIGTERM) on exit."""
    events = settings.data_dir / SPARK_EVENTS
    events.mkdir(parents=True, exist_ok=True)
    # Spark's event log holds every micro-batch's progress (durationMs per phase); pyspark passes these
    # arguments to spark-submit when it launches the job's JVM, next to the session builder's own settings.
    submit = " ".join(
        f"--conf {key}={value}"
        for key, value in {
            "spark.eventLog.enabled": "true",
            "spark.eventLog.dir": f"file://{events}",
            # Plain JSON lines, one file: readable without Spark's codecs.
            "spark.eventLog.compress": "false",
            "spark.eventLog.rolling.enabled": "false",
        }.items()
    )
    submit += " pyspark-shell"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command,
            env={**child_environment(settings), "PYSPARK_SUBMIT_ARGS": submit, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=settings.data_dir,
            preexec_fn=die_with_parent(),  # a bench stopped by a signal leaves no job behind
        )
        try:
            yield process
        finally:
            _stop(process)


@contextmanager
def running_job(settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m rtap stream`` on ``settings`` (:func:`spark_process`; its log ``data_dir/stream.log``)."""
    with spark_process([sys.executable, "-m", "rtap", "stream"], settings, settings.data_dir / "stream.log") as job:
        yield job


def wait_committed(
    settings: Settings,
    process: subprocess.Popen[bytes],
    expected: int,
    timeout_s: float,
    log_path: Path | None = None,
) -> tuple[Any, ...]:
    """Poll ``pipeline_batches`` (read-only, through the job's socket) until ``expected`` input rows committed.

    Returns the progress row (rows, batches, first start, last finish, busy ms); raises when the job exits
    (quoting the end of ``log_path``, by default ``data_dir/stream.log``) or the time runs out.
    """
    from rtap.warehouse import create_client

    deadline = time.monotonic() + timeout_s
    progress: tuple[Any, ...] = (0, 0, None, None, 0)
    while progress[0] < expected:
        if process.poll() is not None:
            log = log_path or settings.data_dir / "stream.log"
            raise PipelineError(f"the stream job exited with {process.returncode}: {tail(log)}")
        if time.monotonic() > deadline:
            raise PipelineError(f"{progress[0]} of {expected} records committed in {timeout_s:.0f} s")
        time.sleep(POLL_S)
        try:
            with create_client(settings, readonly=True) as client:
                progress = client.query_rows(_PROGRESS)[0]
        except Exception:  # noqa: BLE001 - still starting: no channel or no tables yet
            continue
    return progress


def run_job(settings: Settings, expected: int, timeout_s: float) -> JobRun:
    """Start the job on the topic, wait until every record is committed, stop it."""
    from rtap.warehouse import create_client

    launched = time.time()
    with running_job(settings) as process:
        progress = wait_committed(settings, process, expected, timeout_s)
        # From launch: the job's JVM start-up and first-batch planning are part of what it costs.
        cpu_s = tree_cpu_s(process.pid)
        peak = tree_peak_rss_mb(process.pid)
        with create_client(settings, readonly=True) as client:
            ends = [BatchEnd(int(n), float(t)) for n, t in client.query_rows(_BATCH_ENDS)]
    rows, _, first_start, last_finish, busy_ms = progress
    whole = Sample(int(rows), float(last_finish) - float(first_start), cpu_s)
    return JobRun(
        drain=_drain(ends, whole, "P"),
        job_rows_per_s=int(rows) * 1000 / max(1, int(busy_ms)),
        startup_s=float(first_start) - launched,
        peak_rss_mb=peak,
        time_split=time_split(settings.data_dir),
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=JOB_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def tail(path: Path, lines: int = 5) -> str:
    """The last lines of a log, on one line."""
    if not path.exists():
        return f"(no {path.name})"
    return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])


def kafka_engine_error(settings: Settings) -> str | None:
    """The pinned chDB's answer to ``CREATE TABLE ... ENGINE = Kafka`` (None when it accepts it).

    Kept in every result: chDB 4.4.0 refuses with ``Shutdown was called (LOGICAL_ERROR)`` (its message broker
    schedule pool has size 0 and cannot be configured through the connection string or a config file).
    """
    from rtap.warehouse import create_client

    sql = (
        "CREATE TABLE {db}.k_probe (raw String) ENGINE = Kafka SETTINGS "
        f"kafka_broker_list = '{settings.kafka.bootstrap_servers}', kafka_topic_list = '{settings.kafka.topic}', "
        f"kafka_group_name = 'rtap-bench-k-probe-{uuid.uuid4().hex[:8]}', kafka_format = 'RawBLOB'"
    )
    with create_client(settings) as client:
        client.command("CREATE DATABASE IF NOT EXISTS {db}")
        try:
            client.command(sql)
        except Exception as exc:  # noqa: BLE001 - the engine's refusal is the result being recorded
            return " ".join(str(exc).split())
        client.command("DROP TABLE {db}.k_probe")
    return None


@dataclass(frozen=True)
class KafkaEngineRun:
    """K: one drain of the topic by ClickHouse's Kafka engine (see ``kafka_engine_worker``)."""

    drain: Sample
    page_views: int  # page views K counted (no deduplication, no lateness rule)
    chdb_version: str


def kafka_engine(settings: Settings, expected: int, timeout_s: float, python: Path) -> KafkaEngineRun:
    """Run ``kafka_engine_worker`` with ``python`` (a Python whose chDB creates Kafka tables) on the topic."""
    worker = Path(__file__).with_name("kafka_engine_worker.py")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        str(python),
        str(worker),
        str(settings.data_dir / "chdb-k"),
        settings.kafka.bootstrap_servers,
        settings.kafka.topic,
        f"rtap-bench-k-{uuid.uuid4().hex[:8]}",
        str(expected),
        str(timeout_s),
    ]
    out = worker_result(args, "K: the Kafka engine worker", timeout_s + 60)
    if int(out["records"]) < expected:
        raise PipelineError(f"K: the Kafka engine read {out['records']} of {expected} records in {timeout_s:.0f} s")
    return KafkaEngineRun(Sample(int(out["records"]), float(out["seconds"])), int(out["views"]), str(out["chdb"]))
