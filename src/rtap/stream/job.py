"""The stream job: Spark's Kafka source -> parse and classify each micro-batch -> idempotent warehouse writes.

Wiring only: the decisions live in ``rtap.stream.transforms`` (pure), the Spark stage in ``rtap.stream.spark``
and the writes in ``rtap.stream.sink``. While the job is behind, a batch's writes run beside the next batch's
Spark stage (``rtap.stream.overlap``). Offsets are owned by Spark's checkpoint in the rtap data directory, held to the
warehouse's commit records: a micro-batch whose write fails runs again, and the sink makes that re-run harmless.
If the checkpoint is lost, the job resumes after the last batch committed in ``pipeline_batches`` (the warehouse
is the durable record of progress), never from the beginning of the topic and never silently past unread data.

Bounded memory on any backlog: a micro-batch is capped in records and, through the bytes per record of the
last committed batches, in bytes (``rtap.stream.caps``: the query starts again when record sizes move the cap
4 x, and a batch that ran out of memory is planned again smaller), and each task holds its share of one batch;
the driver holds at most two (one being written, the next one parsed). A backlog therefore drains as a sequence
of full-size batches, never as one.

The job survives its own JVM: when Spark's JVM dies (out of memory, killed), the job starts a new one and
resumes from the checkpoint, with the same bounded backoff as a failed batch. Only
``max_consecutive_failures`` failures without a committed batch in between end it (``rtap.stream.restarts``:
the policy, the operator's line, and the state file ``rtap status`` reads).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
from py4j.protocol import Py4JError, Py4JJavaError, Py4JNetworkError
from pyspark.errors import PySparkException, StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming.query import StreamingQuery

from rtap import metrics
from rtap.errors import PipelineError, WarehouseError, first_line
from rtap.generate.generator import ClickstreamGenerator
from rtap.settings import Settings
from rtap.stream.caps import RECHECK_S, BatchCaps, recent_record_bytes
from rtap.stream.checkpoint import committed_batches, planned_batches, planned_offsets, uncommitted_batch, unplan
from rtap.stream.gaps import check_retention, log_start_offsets, resume_positions, spark_starting_offsets
from rtap.stream.identity import check_topic_identity
from rtap.stream.kafka import KafkaDeadLetterPublisher, LagProbe
from rtap.stream.overlap import InFlightWrite, in_flight, overlaps, rewind, writing, written
from rtap.stream.restarts import JOB_STATE_FILE, FailuresInARow, JobState, describe_jvm_exit, out_of_memory
from rtap.stream.sink import BatchStats, WarehouseSink
from rtap.stream.spark import ParseStage, build_session, forget_jvm, freeze_heap, jvm_exit_code, warm_up
from rtap.stream.transforms import TopicPartition, classify
from rtap.warehouse import WarehouseClient

log = logging.getLogger("rtap.stream")

PIPELINE_ID_FILE = "rtap-pipeline-id"
# Whether a batch of this checkpoint's pipeline committed in the warehouse (by pipeline_batches' key).
BATCH_COMMITTED = """
SELECT 1 FROM {db}.pipeline_batches WHERE query_id = {query_id:String} AND batch_id = {batch_id:Int64} LIMIT 1
"""


FETCH_MAX_WAIT_MS = 50
# A transactional producer (Flink's or Kafka Streams' exactly-once sinks) writes records that become events only
# when its transaction commits: an aborted transaction's records are never events, an open one's not yet. Kafka's
# default, read_uncommitted, stored both. (The lag is measured against the same view: rtap.stream.kafka.LagProbe.)
ISOLATION_LEVEL = "read_committed"
# Before the first micro-batch, the parse stage runs this many times on this many generated records
# (rtap.stream.spark.warm_up says why; one round left the first batch at 1.3 s, three at 1.0, ten no better).
WARM_UP_ROUNDS = 3
WARM_UP_RECORDS = 2_000
# Spark stops its pooled Python workers once none was taken or returned for a minute (PythonWorkerFactory's idle
# monitor: a constant, checked every 10 s), and the next batch pays new workers' start again: measured on
# `rtap up --no-generator` at 1,000 events/s after 2.5 minutes without traffic, the first batch's Spark stage took
# 1,380 ms against ~120, and the minute's freshness p99 was 1.8 s. While no batch runs the stage, the job runs it
# on one record per topic this often: well within the minute, whatever the monitor's phase.
KEEP_WARM_S = 30.0


def pipeline_id(checkpoint: Path) -> str:
    """A stable id for this checkpoint: the prefix of every deduplication token the job writes."""
    checkpoint.mkdir(parents=True, exist_ok=True)
    marker = checkpoint / PIPELINE_ID_FILE
    if not marker.exists():
        marker.write_text(str(uuid.uuid4()))
    return marker.read_text().strip()


def starting_offsets(
    settings: Settings, client: WarehouseClient, checkpoint: Path
) -> tuple[str, dict[tuple[str, int], int]]:
    """Where a query without checkpointed offsets starts: after the warehouse's last committed batch."""
    if planned_batches(checkpoint):
        return settings.stream.starting_offsets, {}  # Spark's checkpoint decides; this option is ignored
    kafka = settings.kafka
    # Committed batches and recorded gaps, per input topic.
    committed = {topic: resume_positions(client, kafka, topic) for topic in kafka.input_topics}
    if not any(committed.values()):
        return settings.stream.starting_offsets, {}
    log.warning("no checkpoint in %s: resuming after the last committed batch at offsets %s", checkpoint, committed)
    earliest = settings.stream.starting_offsets == "earliest"
    topics = {topic: (positions, log_start_offsets(kafka, topic)) for topic, positions in committed.items()}
    positions = {(topic, p): offset for topic, offsets in committed.items() for p, offset in offsets.items()}
    return spark_starting_offsets(topics, from_earliest=earliest), positions


def kafka_source(spark: SparkSession, settings: Settings, start: str, cap: int) -> DataFrame:
    """Spark's Kafka source over every input topic as the job reads it (the bench's floor job reads the same),
    from ``start`` (Spark's ``startingOffsets``), at most ``cap`` records a micro-batch."""
    reader = (
        spark.readStream.format("kafka")
        .option("subscribe", ",".join(settings.kafka.input_topics))
        .option("startingOffsets", start)
        .option("maxOffsetsPerTrigger", str(cap))
        # Data loss (retention deleted unread offsets) stops the query with Spark's explicit error; the
        # restart then finds the gap (rtap.stream.gaps), stops the job or records and skips it.
        .option("failOnDataLoss", "true")
        # The Kafka consumer's fetch that finds no new records waits up to fetch.max.wait.ms (500 ms by
        # default) on the broker, once per partition a task reads in turn: at 1,000 events/s one batch in
        # ~50 took 1.5-1.7 s (3 partitions a task), which alone made freshness p99 ~2 s. Spark asks only
        # for offsets that exist, so a short wait costs nothing while records flow.
        .option("kafka.fetch.max.wait.ms", str(FETCH_MAX_WAIT_MS))
        .option("kafka.isolation.level", ISOLATION_LEVEL)
    )
    # Spark's source is Kafka's Java client: the same connection as the Python clients, in Java's properties.
    for key, value in settings.kafka.java_client_config().items():
        reader = reader.option(f"kafka.{key}", value)
    return reader.load()


def warm_up_samples(settings: Settings, now: datetime) -> dict[str, list[bytes]]:
    """What the warm-up parses: the generator's clickstream from ``now`` on the contract-v1 topic (valid events and
    its dirt: both of the readers' paths), and an empty object on every other input topic (which builds its
    format's reader in each worker)."""
    generator = ClickstreamGenerator(
        settings.generator, partitions=1, watermark_delay_s=settings.stream.watermark_delay_s
    )
    start = int(now.timestamp() * 1000)
    samples = {topic: [b"{}"] for topic in settings.kafka.input_topics}
    samples[settings.kafka.topic] = generator.generate_block(range(start, start + WARM_UP_RECORDS)).values
    return samples


class StreamJob:
    """One streaming query, restarted from its checkpoint after a failed batch or a dead JVM (bounded, with backoff)."""

    def __init__(self, settings: Settings, client: WarehouseClient, *, spark: SparkSession | None = None) -> None:
        """``spark``: a session already built (``rtap up`` builds it while the broker starts)."""
        self._settings = settings
        self._spark = spark
        self._client = client
        self._stop = threading.Event()
        self._query: StreamingQuery | None = None
        self.last_batch: BatchStats | None = None
        self._committed_since_start = threading.Event()
        # foreachBatch runs on py4j's callback thread. When the JVM dies during a batch, that thread may still be
        # in it while a new JVM starts: the new query starts once the old call is done.
        self._one_batch_at_a_time = threading.Lock()
        # A batch's warehouse writes, beside the next batch's Spark stage while the job is behind
        # (rtap.stream.overlap); behind is a batch of the query's whole cap (set as each query starts).
        self._writes = InFlightWrite()
        self._caps = BatchCaps(settings.stream, current=settings.stream.max_batch_records)
        # Set when the job stopped its query to start it again with another cap (rtap.stream.caps), and when a
        # failure for want of memory left a batch to plan again smaller before the next start.
        self._recapping = False
        self._shrink_pending = False
        # Why the last batch failed, as its Python exception said it (py4j reports only "Traceback" to Spark).
        self._batch_error: str | None = None
        self.checkpoint = settings.paths.checkpoints / "stream"
        self.state = JobState(pid=os.getpid(), started_at=datetime.now(UTC).isoformat(timespec="seconds"))
        self.state_path = settings.paths.run / JOB_STATE_FILE
        self._stage_ran = time.monotonic()  # when the parse stage last ran (a batch's, the warm-up's, or _keep_warm's)

    def _kafka_source(self, spark: SparkSession, start: str) -> DataFrame:
        cap = self._caps.for_query(self._record_bytes())
        metrics.STREAM.batch_cap.set(cap)
        log.info("micro-batches of at most %d records", cap)
        return kafka_source(spark, self._settings, start, cap)

    def _process(self, sink: WarehouseSink, parse: ParseStage, batch: DataFrame, batch_id: int) -> None:
        with self._one_batch_at_a_time:
            try:
                self._process_batch(sink, parse, batch, batch_id)
            except Exception as error:
                # After a write failed, the batch that waits for it (its own, or the next) fails with WriteFailed,
                # or the job's watch (_await) stops the query: the write's failure is the cause, and _write
                # reported it.
                if self._writes.failure() is None and not self._recapping:  # not a batch the job interrupted
                    self._report_failure(error)
                raise

    def _report_failure(self, error: BaseException) -> None:
        metrics.STREAM.batch_failed(error)
        self._batch_error = f"{type(error).__name__}: {first_line(error)}"

    def _process_batch(self, sink: WarehouseSink, parse: ParseStage, batch: DataFrame, batch_id: int) -> None:
        """Parse the batch (beside the previous batch's writes, if any), then classify it once those committed, and
        start its writes; wait for them unless the job is behind (rtap.stream.overlap.overlaps)."""
        started = datetime.now(UTC)
        clock = time.perf_counter()
        parsed = parse(batch)
        self._stage_ran = time.monotonic()
        spark_ms = (time.perf_counter() - clock) * 1000
        self._writes.wait()
        high_water = sink.high_water(batch_id)  # what the previous batch committed
        planned = planned_offsets(self.checkpoint, batch_id)
        classified = classify(parsed, high_water=high_water, watermark_delay_s=self._settings.stream.watermark_delay_s)
        behind = overlaps(parsed.num_rows, self._caps.current)
        if behind:  # Spark may commit this batch before its writes end: the checkpoint folder says so
            writing(self.checkpoint, batch_id)
        self._writes.submit(
            batch_id,
            functools.partial(self._write, sink, batch_id, classified, started, high_water, planned, spark_ms, behind),
        )
        if not behind:
            self._writes.wait()

    def _write(
        self,
        sink: WarehouseSink,
        batch_id: int,
        classified: pa.Table,
        started: datetime,
        high_water: Mapping[TopicPartition, datetime],
        planned: Mapping[TopicPartition, int],
        spark_ms: float,
        marked: bool,
    ) -> None:
        """On the write thread: the batch's warehouse writes, ending with its commit record; then the checkpoint's
        in-flight marker goes, if this batch wrote one (``marked``)."""
        clock = time.perf_counter()
        try:
            stats = sink.write(batch_id, classified, started, high_water, planned)
        except Exception as error:
            self._report_failure(error)
            log.error("batch %d: the warehouse write failed: %s (the batch runs again)", batch_id, self._batch_error)
            raise
        if marked:
            written(self.checkpoint)
        self.last_batch = stats
        self._committed_since_start.set()
        self._caps.committed(stats.input_rows, stats.input_bytes)
        log.info(
            "batch %d: %d records -> %d events, %d duplicates, %d late, %d dead letters in %d ms "
            "(spark %d ms, warehouse %d ms, %d records behind)",
            batch_id, stats.input_rows, stats.accepted, stats.duplicates, stats.late, stats.dead_letters,
            stats.duration_ms, spark_ms, (time.perf_counter() - clock) * 1000, stats.kafka_lag,
        )  # fmt: skip

    def _settle(self) -> None:
        """Before a query starts: the previous query's writes done, and a batch whose writes were in flight and did
        not commit run again (rtap.stream.overlap)."""
        with self._one_batch_at_a_time:  # a foreachBatch call of the previous query (or of a dead JVM) is over
            self._writes.settle()  # a failure was reported by the write (_write); its batch runs again here
        batch = in_flight(self.checkpoint)
        if batch is None:
            return
        parameters = {"query_id": pipeline_id(self.checkpoint), "batch_id": batch}
        if self._client.query_rows(BATCH_COMMITTED, parameters=parameters):
            written(self.checkpoint)  # committed just before the job stopped
        elif rewind(self.checkpoint, batch):
            log.warning("batch %d: Spark committed it, its warehouse writes did not commit: it runs again", batch)

    def _plan_smaller(self) -> None:
        """After a failure for want of memory: the batch Spark planned and did not commit is planned again, at
        most a quarter as large (rtap.stream.caps), unless the warehouse committed it (it fit: Spark replays it as
        planned and the sink drops its writes as copies). A checkpoint that cannot be read or changed here leaves
        the batch as planned, and only the limit applies to the batches after it."""
        spanned, what = None, "out of memory between batches"
        try:
            batch = uncommitted_batch(self.checkpoint)
            if batch is not None and self._client.query_rows(
                BATCH_COMMITTED, parameters={"query_id": pipeline_id(self.checkpoint), "batch_id": batch}
            ):
                what = f"out of memory after batch {batch} committed"
            elif batch is not None:
                spanned = unplan(self.checkpoint, batch)
                size = "" if spanned is None else f" of {spanned:,} records"
                what = f"batch {batch}{size} ran out of memory: it is planned again"
        except (PipelineError, OSError) as error:
            what = f"out of memory; the batch stays as planned ({first_line(error)})"
        limit = self._caps.out_of_memory(spanned)
        log.warning("%s, at most %s records a batch until one fits", what, f"{limit:,}")

    def _check_logs(self) -> dict[str, str]:
        """Before a query starts: each input topic is the log the warehouse read (rtap.stream.identity), and
        nothing it had not read was deleted (rtap.stream.gaps), both judged from the same resume positions, read
        once. Returns the topics' ids, for the batches to record."""
        kafka = self._settings.kafka
        positions = {topic: resume_positions(self._client, kafka, topic) for topic in kafka.input_topics}
        ids = check_topic_identity(self._settings, self._client, positions)
        check_retention(self._settings, self._client, self.checkpoint, pipeline_id(self.checkpoint), positions)
        return ids

    def _start(self, spark: SparkSession, parse: ParseStage, dead_letters: KafkaDeadLetterPublisher) -> StreamingQuery:
        # Before every start, restarts included: Spark's own data-loss failure ends up here too.
        ids = self._check_logs()
        start, committed = starting_offsets(self._settings, self._client, self.checkpoint)
        sink = WarehouseSink(
            self._client,
            self._settings.stream,
            pipeline_id(self.checkpoint),
            dead_letters,
            LagProbe(self._settings.kafka, committed),
            topic=self._settings.kafka.topic,
            topic_ids=ids,
        )
        stream = self._settings.stream
        spark.conf.set("spark.sql.streaming.pollingDelay", f"{int(stream.poll_interval_s * 1000)}ms")
        return (
            self._kafka_source(spark, start)
            .writeStream.queryName("rtap-stream")
            .foreachBatch(lambda batch, batch_id: self._process(sink, parse, batch, batch_id))
            .option("checkpointLocation", str(self.checkpoint))
            .trigger(processingTime=f"{stream.trigger_interval_s} seconds")
            .start()
        )

    def run(self) -> None:
        """Run until :meth:`stop`; failures restart the query (or the JVM), too many in a row raise."""
        # Also before Spark's start-up, so that refusing another log or deleted records takes seconds, not a JVM start.
        self._check_logs()
        self.state.write(self.state_path)
        spark, parse = self._warmed_up(self._spark or build_session(self._settings))
        dead_letters = KafkaDeadLetterPublisher(self._settings.kafka)
        failures = FailuresInARow(self._settings.stream.max_consecutive_failures)
        try:
            while not self._stop.is_set():
                self._settle()
                if self._shrink_pending:
                    self._shrink_pending = False
                    self._plan_smaller()
                self._committed_since_start.clear()
                self._batch_error, self._recapping = None, False
                jvm_died, error = False, None
                try:
                    self._query = self._start(spark, parse, dead_letters)
                    error = self._await(self._query, spark, parse)
                    reason = "" if error is None else f"batch failed ({self._batch_error or python_error_line(error)})"
                # A dead JVM shows as py4j's network error, as a refused connection (py4j's next call opens a new
                # one: measured after a kill -9), or as a plain Py4JError after an empty answer, which is a death
                # only once the JVM's process has exited.
                except (Py4JError, ConnectionError) as failure:
                    if self._stop.is_set():  # the JVM got the same signal and is already gone: that is a stop
                        log.warning("Spark's JVM exited while the job was stopping")
                        return
                    code = _exit_code_when_dead(spark)
                    if code is None and not isinstance(failure, (Py4JNetworkError, ConnectionError)):
                        raise  # an error of a live JVM (e.g. a query Spark refuses to start): not a death
                    jvm_died, reason = True, describe_jvm_exit(code)
                    forget_jvm(spark)
                    self._query = None
                if self._recapping and not jvm_died and not self._stop.is_set():  # stopped for another cap
                    if self._committed_since_start.is_set():
                        failures.recovered()
                    continue
                if self._stop.is_set() or not (jvm_died or error is not None):
                    return
                failures.failed(committed_since_last_start=self._committed_since_start.is_set())
                # Out of memory: the batch is planned again smaller, down to one record, before the limit applies.
                memory = out_of_memory(reason) or (error is not None and out_of_memory(str(error)))
                self._shrink_pending = memory and self._caps.can_shrink
                if failures.exhausted and not self._shrink_pending:
                    raise PipelineError(failures.give_up_line(reason))
                self._record_restart(reason)
                log.warning("%s", failures.restart_line(reason, smaller=self._shrink_pending))
                if self._stop.wait(failures.backoff_s):
                    return
                metrics.STREAM.job_restarted("jvm" if jvm_died else None)
                if jvm_died:
                    spark, parse = self._warmed_up(build_session(self._settings))
                    log.info("Spark's JVM started again (restart %d of this job)", self.state.restarts)
        finally:
            # Nothing left to stop when the JVM is gone (py4j refuses the connection, or fails the call).
            with contextlib.suppress(Py4JError, ConnectionError):
                if self._query is not None and self._query.isActive:
                    self._query.stop()
            with self._one_batch_at_a_time:
                self._writes.settle()  # a failure was reported by the write (_write); the next start runs it again
            self._writes.close()
            dead_letters.close()

    def _warmed_up(self, spark: SparkSession) -> tuple[SparkSession, ParseStage]:
        """``spark`` and its parse stage after :func:`warm_up`; a warm-up that fails is the first batch's failure,
        said in one line."""
        stream = self._settings.stream
        try:
            parse = ParseStage(
                spark,
                formats=self._settings.kafka.input_topics,
                max_record_bytes=stream.max_record_bytes,
                max_future_skew_s=stream.max_future_skew_s,
                max_batch_bytes=stream.max_batch_bytes,
            )
            seconds = warm_up(spark, parse, warm_up_samples(self._settings, datetime.now(UTC)), rounds=WARM_UP_ROUNDS)
        except (Py4JJavaError, PySparkException) as error:  # a Python worker that cannot start or parse
            reason = python_error_line(error)
            raise PipelineError(f"Spark's parse stage failed before the first batch: {reason}") from error
        log.info(
            "parse stage warmed up in %d ms (Python workers started, code compiled; rounds of %d records: %s ms)",
            sum(seconds) * 1000, WARM_UP_RECORDS, ", ".join(f"{s * 1000:.0f}" for s in seconds),
        )  # fmt: skip
        freeze_heap()  # the driver's start-up is over (rtap.stream.spark.freeze_heap)
        self._stage_ran = time.monotonic()
        return spark, parse

    def _await(self, query: StreamingQuery, spark: SparkSession, parse: ParseStage) -> BaseException | None:
        """Wait until the query ends or a stop is requested, keeping the parse stage warm meanwhile; the query's
        failure, if it failed."""
        checked = time.monotonic()
        try:
            while not self._stop.is_set() and query.isActive:
                query.awaitTermination(1)
                if (failed := self._writes.failure()) is not None:  # no batch may come to fail on it
                    query.stop()
                    return failed
                self._keep_warm(spark, parse)
                if time.monotonic() - checked >= RECHECK_S:
                    checked = time.monotonic()
                    if self._recap(query):
                        return None
            return query.exception()
        except StreamingQueryException as failure:
            return failure

    def _record_bytes(self) -> float:
        """Bytes per record of this pipeline's last committed batches (rtap.stream.caps.recent_record_bytes)."""
        committed = committed_batches(self.checkpoint)
        last = committed[-1] if committed else None
        return recent_record_bytes(self._client, pipeline_id(self.checkpoint), last)

    def _recap(self, query: StreamingQuery) -> bool:
        """Stop ``query`` if the last batches' record sizes call for another cap (rtap.stream.caps); whether it did.
        A warehouse that cannot say now is asked again at the next check (the batches meet its failure too)."""
        try:
            cap = self._caps.restart_with(self._record_bytes())
        except WarehouseError as error:
            log.warning("the batch cap's check could not read the last batches' sizes: %s", first_line(error))
            return False
        if cap is None:
            return False
        log.warning("the last batches' record sizes call for %s records a batch: restarting the query", f"{cap:,}")
        self._recapping = True
        query.stop()
        return True

    def _keep_warm(self, spark: SparkSession, parse: ParseStage) -> None:
        """Run the parse stage on one record per input topic if no stage ran for :data:`KEEP_WARM_S` and no batch
        is running, so that Spark keeps its Python workers (see KEEP_WARM_S). A batch that arrives meanwhile waits
        for it (~0.1 s). The stage writes nothing; a failure here is said and left to the batches, which meet the
        same workers and have the failure path (a dead JVM's error goes up to :meth:`run`, as from a batch)."""
        if time.monotonic() - self._stage_ran < KEEP_WARM_S or not self._one_batch_at_a_time.acquire(blocking=False):
            return
        try:
            warm_up(spark, parse, {topic: [b"{}"] for topic in self._settings.kafka.input_topics}, rounds=1)
        except (Py4JJavaError, PySparkException) as error:
            log.warning("the parse stage's keep-warm run failed: %s", python_error_line(error))
        finally:
            self._stage_ran = time.monotonic()
            self._one_batch_at_a_time.release()

    def _record_restart(self, reason: str) -> None:
        self.state.restarts += 1
        self.state.last_restart_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.state.last_error = reason
        self.state.write(self.state_path)

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


def _exit_code_when_dead(spark: SparkSession, wait_s: float = 5.0) -> int | None:
    """The JVM's exit code once it is gone (a py4j error can arrive just before the process is reaped)."""
    deadline = time.monotonic() + wait_s
    while (code := jvm_exit_code(spark)) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    return code


def python_error_line(error: object) -> str:
    """The line of ``error``'s text that names the failure: after a Python traceback that Spark relays (from a
    Python worker, or from foreachBatch through py4j), the exception's own line; else the first line."""
    lines = str(error).strip().splitlines()
    for index, line in enumerate(lines):
        if "Traceback (most recent call last)" in line:
            after = [x for x in lines[index + 1 :] if x.strip() and not x[0].isspace()]
            if after:
                return after[0].strip()
    return first_line(error)
