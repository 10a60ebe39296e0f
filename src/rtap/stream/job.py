"""The stream job: Spark's Kafka source -> classify each micro-batch -> idempotent warehouse writes.

Wiring only: the decisions live in ``rtap.stream.transforms`` (pure) and the writes in ``rtap.stream.sink``.
Offsets are owned by Spark's checkpoint in the rtap data directory; a micro-batch whose write fails is not
committed and runs again, and the sink makes that re-run harmless. If the checkpoint is lost, the job resumes
after the last batch committed in ``pipeline_batches`` (the warehouse is the durable record of progress),
never from the beginning of the topic and never silently past unread data.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from py4j.protocol import Py4JNetworkError
from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming.query import StreamingQuery

from rtap import metrics
from rtap.errors import PipelineError
from rtap.settings import Settings
from rtap.stream.gaps import check_retention, log_start_offsets, resume_positions, spark_starting_offsets
from rtap.stream.kafka import KafkaDeadLetterPublisher, LagProbe
from rtap.stream.sink import BatchStats, WarehouseSink
from rtap.stream.spark import build_session
from rtap.stream.transforms import classify_batch
from rtap.warehouse import WarehouseClient

log = logging.getLogger("rtap.stream")

PIPELINE_ID_FILE = "rtap-pipeline-id"


def pipeline_id(checkpoint: Path) -> str:
    """A stable id for this checkpoint: the prefix of every deduplication token the job writes."""
    checkpoint.mkdir(parents=True, exist_ok=True)
    marker = checkpoint / PIPELINE_ID_FILE
    if not marker.exists():
        marker.write_text(str(uuid.uuid4()))
    return marker.read_text().strip()


def starting_offsets(settings: Settings, client: WarehouseClient, checkpoint: Path) -> tuple[str, dict[int, int]]:
    """Where a query without checkpointed offsets starts: after the warehouse's last committed batch."""
    if (checkpoint / "offsets").exists():
        return settings.stream.starting_offsets, {}  # Spark's checkpoint decides; this option is ignored
    committed = resume_positions(client, settings.kafka.topic)  # committed batches and recorded gaps
    if not committed:
        return settings.stream.starting_offsets, {}
    log.warning("no checkpoint in %s: resuming after the last committed batch at offsets %s", checkpoint, committed)
    earliest = settings.stream.starting_offsets == "earliest"
    partitions = log_start_offsets(settings.kafka)
    return spark_starting_offsets(settings.kafka.topic, committed, partitions, from_earliest=earliest), committed


class StreamJob:
    """One streaming query, restarted from its checkpoint after a failed batch (bounded, with backoff)."""

    def __init__(
        self,
        settings: Settings,
        client: WarehouseClient,
        *,
        spark: SparkSession | None = None,
        max_consecutive_failures: int = 5,
    ) -> None:
        """``spark``: a session already built (``rtap up`` builds it while the broker starts)."""
        self._settings = settings
        self._spark = spark
        self._client = client
        self._max_failures = max_consecutive_failures
        self._stop = threading.Event()
        self._query: StreamingQuery | None = None
        self.last_batch: BatchStats | None = None
        self._committed_since_start = threading.Event()
        self.checkpoint = settings.paths.checkpoints / "stream"

    def _kafka_source(self, spark: SparkSession, start: str) -> DataFrame:
        settings = self._settings
        reader = (
            spark.readStream.format("kafka")
            .option("subscribe", settings.kafka.topic)
            .option("startingOffsets", start)
            .option("maxOffsetsPerTrigger", str(settings.stream.max_offsets_per_trigger))
            # Data loss (retention deleted unread offsets) stops the query with Spark's explicit error; the
            # restart then finds the gap (rtap.stream.gaps), stops the job or records and skips it.
            .option("failOnDataLoss", "true")
        )
        for key, value in settings.kafka.client_config().items():
            reader = reader.option(f"kafka.{key}", value)
        return reader.load()

    def _process(self, sink: WarehouseSink, batch: DataFrame, batch_id: int) -> None:
        try:
            self._process_batch(sink, batch, batch_id)
        except Exception as error:
            metrics.STREAM.batch_failed(error)
            raise

    def _process_batch(self, sink: WarehouseSink, batch: DataFrame, batch_id: int) -> None:
        started = datetime.now(UTC)
        clock = time.perf_counter()
        high_water = sink.high_water(batch_id)
        stream = self._settings.stream
        classified = classify_batch(
            batch,
            high_water=high_water,
            watermark_delay_s=stream.watermark_delay_s,
            max_record_bytes=stream.max_record_bytes,
            max_future_skew_s=stream.max_future_skew_s,
        ).toArrow()
        spark_ms = (time.perf_counter() - clock) * 1000
        stats = sink.write(batch_id, classified, started, high_water)
        self.last_batch = stats
        self._committed_since_start.set()
        log.info(
            "batch %d: %d records -> %d events, %d duplicates, %d late, %d dead letters in %d ms "
            "(spark %d ms, warehouse %d ms, lag %d)",
            batch_id, stats.input_rows, stats.accepted, stats.duplicates, stats.late, stats.dead_letters,
            stats.duration_ms, spark_ms, stats.duration_ms - spark_ms, stats.kafka_lag,
        )  # fmt: skip

    def _start(self, spark: SparkSession, dead_letters: KafkaDeadLetterPublisher) -> StreamingQuery:
        # Before every start, restarts included: Spark's own data-loss failure ends up here too.
        check_retention(self._settings, self._client, self.checkpoint, pipeline_id(self.checkpoint))
        start, committed = starting_offsets(self._settings, self._client, self.checkpoint)
        sink = WarehouseSink(
            self._client,
            self._settings.stream,
            pipeline_id(self.checkpoint),
            dead_letters,
            LagProbe(self._settings.kafka, committed),
        )
        interval = f"{self._settings.stream.trigger_interval_s} seconds"
        return (
            self._kafka_source(spark, start)
            .writeStream.queryName("rtap-stream")
            .foreachBatch(lambda batch, batch_id: self._process(sink, batch, batch_id))
            .option("checkpointLocation", str(self.checkpoint))
            .trigger(processingTime=interval)
            .start()
        )

    def run(self) -> None:
        """Run until :meth:`stop`; a failing batch restarts the query, too many failures in a row raise."""
        # Also before Spark's start-up, so that refusing to skip deleted records takes seconds, not a JVM start.
        check_retention(self._settings, self._client, self.checkpoint, pipeline_id(self.checkpoint))
        spark = self._spark or build_session(self._settings)
        dead_letters = KafkaDeadLetterPublisher(self._settings.kafka)
        failures = 0
        try:
            while not self._stop.is_set():
                self._query = self._start(spark, dead_letters)
                self._committed_since_start.clear()
                error = self._await(self._query)
                if self._stop.is_set() or error is None:
                    return
                failures = 1 if self._committed_since_start.is_set() else failures + 1
                if failures >= self._max_failures:
                    raise PipelineError(
                        f"stream job failed {failures} times in a row; last error: {_first_line(error)}"
                    )
                backoff = min(30.0, 2.0**failures)
                log.error("batch failed (%s); restarting from the checkpoint in %.0f s", _first_line(error), backoff)
                if not self._stop.wait(backoff):
                    metrics.STREAM.job_restarted()
        finally:
            with contextlib.suppress(Py4JNetworkError):  # nothing left to stop when the JVM is gone
                if self._query is not None and self._query.isActive:
                    self._query.stop()
            dead_letters.close()

    def _await(self, query: StreamingQuery) -> BaseException | None:
        """Wait until the query ends or a stop is requested; the query's failure, if it failed."""
        try:
            while not self._stop.is_set() and query.isActive:
                query.awaitTermination(1)
        except StreamingQueryException as failure:
            return failure
        except Py4JNetworkError:
            if self._stop.is_set():  # the JVM got the same signal and is already gone: that is a stop
                log.warning("Spark's JVM exited while the job was stopping")
                return None
            raise PipelineError("Spark's JVM died; the job stops (restart it to resume from the checkpoint)") from None
        return query.exception()

    def stop(self) -> None:
        """Ask :meth:`run` to stop the query (within a second).

        Only sets a flag: a signal handler runs on the main thread, possibly in the middle of a py4j call,
        and a second py4j call from there would corrupt the gateway connection. An interrupted micro-batch
        is not committed and runs again on restart, which the sink makes harmless.
        """
        self._stop.set()

    def wait_until_started(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self._query is None and time.monotonic() < deadline:
            time.sleep(0.2)


def _first_line(error: object) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
