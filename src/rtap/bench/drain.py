"""Drain-side measurements over a pre-filled topic: raw consumer (B2), Spark pass-through (B3), warehouse
insert (B4), the full rtap job (P) and ClickHouse's Kafka table engine (K)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rtap.bench.procfs import tree_cpu_s, tree_peak_rss_mb
from rtap.bench.produce import Sample
from rtap.errors import BrokerError, PipelineError
from rtap.settings import Settings, child_environment

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import SparkSession

    from rtap.warehouse import WarehouseClient

POLL_S = 0.5
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


def spark_drain(spark: SparkSession, settings: Settings, checkpoint: Path) -> Sample:
    """B3: Kafka source -> noop sink, ``availableNow``: what Spark alone costs to read the topic."""
    reader = spark.readStream.format("kafka").option("subscribe", settings.kafka.topic)
    reader = reader.option("startingOffsets", "earliest").option(
        "maxOffsetsPerTrigger", str(settings.stream.max_offsets_per_trigger)
    )
    for key, value in settings.kafka.client_config().items():
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
    rows = sum(int(p["numInputRows"]) for p in query.recentProgress)
    return Sample(rows, elapsed)


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

    drain: Sample  # first batch started -> all input committed (pipeline_batches)
    batches: int
    job_rows_per_s: float  # the job's own figure: input rows / summed batch durations
    startup_s: float  # process start -> first batch started
    peak_rss_mb: float | None  # the job's Python process plus its Spark JVM


_PROGRESS = (
    "SELECT toUInt64(sum(input_rows)), count(), toFloat64(min(started_at)), toFloat64(max(finished_at)), "
    "toUInt64(sum(duration_ms)) FROM {db}.pipeline_batches FINAL"
)


def run_job(settings: Settings, expected: int, timeout_s: float) -> JobRun:
    """Start ``python -m rtap stream`` on the topic, wait until every record is committed, stop it (SIGTERM)."""
    from rtap.warehouse import create_client

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.data_dir / "stream.log"
    launched = time.time()
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "rtap", "stream"],
            env=child_environment(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=settings.data_dir,
        )
        try:
            deadline = time.monotonic() + timeout_s
            progress: tuple[Any, ...] = (0, 0, None, None, 0)
            while progress[0] < expected:
                if process.poll() is not None:
                    raise PipelineError(f"P: the stream job exited with {process.returncode}: {_tail(log_path)}")
                if time.monotonic() > deadline:
                    raise PipelineError(f"P: {progress[0]} of {expected} records committed in {timeout_s:.0f} s")
                time.sleep(POLL_S)
                try:
                    with create_client(settings, readonly=True) as client:
                        progress = client.query_rows(_PROGRESS)[0]
                except Exception:  # noqa: BLE001 - still starting: no channel or no tables yet
                    continue
            # From launch: the job's JVM start-up and first-batch planning are part of what it costs.
            cpu_s = tree_cpu_s(process.pid)
            peak = tree_peak_rss_mb(process.pid)
        finally:
            _stop(process)
    rows, batches, first_start, last_finish, busy_ms = progress
    return JobRun(
        drain=Sample(int(rows), float(last_finish) - float(first_start), cpu_s),
        batches=int(batches),
        job_rows_per_s=int(rows) * 1000 / max(1, int(busy_ms)),
        startup_s=float(first_start) - launched,
        peak_rss_mb=peak,
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=JOB_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def _tail(path: Path, lines: int = 5) -> str:
    return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])


def kafka_engine(settings: Settings, expected: int, timeout_s: float) -> tuple[Sample | None, str | None]:
    """K: ClickHouse's Kafka table engine in chDB plus a materialized view computing ``page_views_1m``.

    Returns the drain sample, or None and the engine's exact error when chDB cannot run it here.
    """
    from rtap.warehouse import create_client

    group = f"rtap-bench-k-{uuid.uuid4().hex[:8]}"
    statements = (
        "CREATE TABLE {db}.k_source (raw String) ENGINE = Kafka SETTINGS "
        f"kafka_broker_list = '{settings.kafka.bootstrap_servers}', kafka_topic_list = '{settings.kafka.topic}', "
        f"kafka_group_name = '{group}', kafka_format = 'JSONAsString', "
        f"kafka_num_consumers = {settings.kafka.partitions}",
        "CREATE TABLE {db}.k_page_views_1m (window_start DateTime('UTC'), page_url String, records UInt64, "
        "views UInt64, users AggregateFunction(uniqExact, String)) "
        "ENGINE = AggregatingMergeTree ORDER BY (window_start, page_url)",
        "CREATE MATERIALIZED VIEW {db}.k_mv TO {db}.k_page_views_1m AS SELECT "
        "toStartOfMinute(parseDateTime64BestEffortOrZero(JSONExtractString(raw, 'event_time'), 3, 'UTC')) "
        "AS window_start, JSONExtractString(raw, 'page_url') AS page_url, count() AS records, "
        "countIf(JSONExtractString(raw, 'event_type') = 'page_view') AS views, "
        "uniqExactStateIf(JSONExtractString(raw, 'user_id'), JSONExtractString(raw, 'event_type') = 'page_view') "
        "AS users FROM {db}.k_source GROUP BY window_start, page_url",
    )
    with create_client(settings) as client:
        client.command("CREATE DATABASE IF NOT EXISTS {db}")
        started = time.perf_counter()
        try:
            for sql in statements:
                client.command(sql)
        except Exception as exc:  # noqa: BLE001 - K's outcome is the engine's error, reported as the result
            return None, " ".join(str(exc).split())
        deadline = time.monotonic() + timeout_s
        done = 0
        while done < expected and time.monotonic() < deadline:
            time.sleep(POLL_S)
            done = int(client.query_rows("SELECT toUInt64(sum(records)) FROM {db}.k_page_views_1m")[0][0] or 0)
        elapsed = time.perf_counter() - started
        client.command("DROP TABLE {db}.k_mv")
        client.command("DROP TABLE {db}.k_source")
    if done < expected:
        return None, f"the Kafka engine consumed {done} of {expected} records in {timeout_s:.0f} s"
    return Sample(done, elapsed), None
