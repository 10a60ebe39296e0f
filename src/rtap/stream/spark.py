"""The Spark side of the stream job: its SparkSession (local by default, any cluster through ``--master``)
and the one Spark stage of every micro-batch, :class:`ParseStage` (and :func:`warm_up`, which runs it before the
first micro-batch).

Why the stage hands Arrow IPC streams back rather than typed columns: a ``mapInArrow`` result that Spark
collects as typed columns is converted from Arrow to Spark rows and back to Arrow on the way to the driver.
As one binary value per Arrow batch the parsed records cross that boundary as a few large byte strings
(measured on a 404k-record topic, local[2]: 76k against 40k records/s).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.pandas.functions import pandas_udf
from pyspark.util import PythonEvalType

from rtap.contract.formats import SourceReader, reader
from rtap.errors import DependencyError
from rtap.runtime.jvm import class_sharing_options
from rtap.settings import JAVA_REDACTION_REGEX, Settings
from rtap.stream import ui
from rtap.stream.transforms import bound_raw, parse_records, parsed_schema

# The Kafka source and its client: resolved by `make jars` from jars/pom.xml (profile `spark`), pinned to the
# exact pyspark version. Nothing else goes on the class path: pyspark ships the rest.
CONNECTOR_JARS = (
    "spark-sql-kafka-0-10_",
    "spark-token-provider-kafka-0-10_",
    "kafka-clients-",
    "commons-pool2-",
)

# The columns of Spark's Kafka source that the parse stage reads (its input), as a DDL string.
KAFKA_COLUMNS = "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"
KAFKA_NAMES = ("key", "value", "topic", "partition", "offset", "timestamp")

# AWS's MSK IAM login module and the AWS SDK it needs (jars/pom.xml, profile `msk-iam`): on the class path only
# when the Kafka settings ask for AWS_MSK_IAM.
MSK_IAM_JAR = "aws-msk-iam-auth-"


def msk_iam_jars(settings: Settings) -> list[Path]:
    """The jars of MSK IAM's Java login module if the settings use it (else none), or a clear error."""
    if settings.kafka.sasl_mechanism != "AWS_MSK_IAM":
        return []
    directory = settings.jars_dir / "msk-iam"
    jars = sorted(directory.glob("*.jar"))
    if not any(jar.name.startswith(MSK_IAM_JAR) for jar in jars):
        raise DependencyError(f"AWS_MSK_IAM needs the aws-msk-iam-auth jars in {directory}: run `make jars`")
    return jars


def connector_jars(directory: Path) -> list[Path]:
    """The connector jars in ``directory``, or a clear error naming the command that fetches them."""
    jars = sorted(p for p in directory.glob("*.jar") if p.name.startswith(CONNECTOR_JARS))
    missing = [prefix for prefix in CONNECTOR_JARS if not any(j.name.startswith(prefix) for j in jars)]
    if missing:
        raise DependencyError(
            f"Spark's Kafka connector jars are missing in {directory} ({', '.join(missing)}): run `make jars`"
        )
    return jars


# Records per Arrow batch handed to a Python worker, and its byte limit: what one worker holds at a time.
ARROW_BATCH_RECORDS = 10_000
ARROW_BATCH_BYTES = 64 * 1024 * 1024
_PARSED = "arrow"
EXIT_ON_OOM = "-XX:+ExitOnOutOfMemoryError"
_FILE_SYSTEM_CHECKPOINTS = "org.apache.spark.sql.execution.streaming.checkpointing.FileSystemBasedCheckpointFileManager"


def driver_java_options(settings: Settings) -> list[str]:
    """The driver JVM's options. The class-data archive is the driver's only: a cluster's executors run
    other JVMs, on other class paths."""
    # Out of heap: die at once, and the job starts a new JVM from the checkpoint (rtap.stream.job), rather than
    # go on in whatever state the error left the JVM.
    return [EXIT_ON_OOM, *class_sharing_options(settings, "spark")]


def build_session(settings: Settings) -> SparkSession:
    """A SparkSession for the stream job. Must run before any other SparkSession in the process."""
    if shutil.which("java") is None:
        raise DependencyError("Java 17+ is required by Spark and was not found on PATH")
    stream = settings.stream
    ui.check_exposure(stream)  # every session rtap makes (the job's, `rtap jvm archive`'s), before the JVM starts
    # The parse stage runs in Python workers started with the interpreter PySpark reads from PYSPARK_PYTHON
    # (the spark.pyspark.python setting reaches only a driver started by spark-submit): by default this one,
    # whose environment has rtap installed; on a cluster, the executors' own (RTAP_STREAM_PYTHON).
    os.environ["PYSPARK_PYTHON"] = stream.python or sys.executable
    jars = connector_jars(settings.jars_dir / "spark") + msk_iam_jars(settings)
    builder = (
        SparkSession.builder.appName(stream.app_name)
        .master(stream.master)
        .config("spark.jars", ",".join(str(j) for j in jars))
        # The Kafka client's secrets in the source's options never reach Spark's logs or its UI.
        .config("spark.redaction.regex", JAVA_REDACTION_REGEX)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(stream.shuffle_partitions))
        .config("spark.driver.memory", stream.driver_memory)
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.ui.killEnabled", "false")  # whoever can read the UI cannot stop the pipeline's jobs
        .config("spark.sql.adaptive.enabled", "false")  # tiny per-batch plans: AQE re-planning costs more than it saves
        .config("spark.sql.streaming.metricsEnabled", "true")
        # The checkpoint's two writes per micro-batch (offsets, commit) through Hadoop's plain local file
        # system: the default checksummed FileContext cost 70 ms each at 1,000 events/s, this 15-20 ms
        # (an atomic rename either way). Local paths only; a checkpoint on HDFS or S3 is unaffected.
        .config("spark.sql.streaming.checkpointFileManagerClass", _FILE_SYSTEM_CHECKPOINTS)
        .config("spark.hadoop.fs.file.impl", "org.apache.hadoop.fs.RawLocalFileSystem")
        # Spark's own metrics in Prometheus' format on the UI port (driver JVM, scheduler, executors), under a
        # fixed namespace instead of the application id, so their names survive a restart
        # (deploy/prometheus scrapes them; rtap's own figures come from rtap.metrics).
        .config("spark.ui.prometheus.enabled", "true")
        .config("spark.metrics.namespace", "rtap")
        .config("spark.metrics.conf.*.sink.prometheusServlet.class", "org.apache.spark.metrics.sink.PrometheusServlet")
        .config("spark.metrics.conf.*.sink.prometheusServlet.path", "/metrics/prometheus")
        .config("spark.metrics.conf.driver.source.jvm.class", "org.apache.spark.metrics.source.JvmSource")
        .config("spark.driver.extraJavaOptions", shlex.join(driver_java_options(settings)))
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(ARROW_BATCH_RECORDS))
        .config("spark.sql.execution.arrow.maxBytesPerBatch", str(ARROW_BATCH_BYTES))
    )
    if ui.local_master(stream):
        # Local mode, or a standalone cluster on this machine (rtap.runtime.cluster): executors reach the driver on
        # loopback, so its RPC and block-manager ports (no authentication) listen there alone. The Spark UI
        # listens on ui_host (loopback unless configured, and then behind its token): it ignores
        # spark.driver.bindAddress and reads SPARK_LOCAL_IP, which the JVM launched below inherits.
        os.environ["SPARK_LOCAL_IP"] = stream.ui_host
        builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
    if stream.ui_secret is not None:  # every UI request presents a token (rtap.stream.ui)
        for key, value in ui.spark_config(stream.ui_secret).items():
            builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session


def jvm_exit_code(session: SparkSession) -> int | None:
    """The exit status of the session's JVM once it has exited (negative: killed by that signal); None while
    it runs or when this process did not start it."""
    process: subprocess.Popen[bytes] | None = getattr(session.sparkContext._gateway, "proc", None)
    return None if process is None else process.poll()


def forget_jvm(session: SparkSession) -> None:
    """After the session's JVM died: drop PySpark's references to it, so that the next session starts a new one.

    The gateway's callback server (which serves foreachBatch) closes with it; Spark's Python workers exit
    when their JVM does. The heap frozen after the session's start (:func:`freeze_heap`) is thawed: the dead
    session's objects can be collected, and the next session's start freezes what is alive then.
    """
    from pyspark import SparkContext

    gc.unfreeze()
    gateway = session.sparkContext._gateway
    with contextlib.suppress(Exception):  # a dead JVM cannot take part in a clean shutdown
        if gateway is not None:
            gateway.shutdown(raise_exception=False)
    process: subprocess.Popen[bytes] | None = getattr(gateway, "proc", None)
    if process is not None and process.poll() is None:
        process.kill()
        process.wait(timeout=30)
    SparkContext._gateway = None
    SparkContext._jvm = None
    SparkContext._active_spark_context = None
    SparkSession._instantiatedSession = None
    SparkSession._activeSession = None


def shutdown_jvm(session: SparkSession, timeout_s: float = 120.0) -> None:
    """Stop ``session`` and end its JVM, waiting for the exit (a JVM writes its class-data archive then).

    PySpark keeps the JVM until the Python process exits, and the JVM exits when its stdin closes.
    """
    from pyspark import SparkContext

    gateway = session.sparkContext._gateway
    assert gateway is not None  # a live session has its gateway
    process: subprocess.Popen[bytes] | None = getattr(gateway, "proc", None)
    session.stop()
    gateway.shutdown()
    SparkContext._gateway = None  # a later session in this process would launch a new JVM
    SparkContext._jvm = None
    if process is not None and process.stdin is not None:
        process.stdin.close()
        process.wait(timeout=timeout_s)


def freeze_heap() -> None:
    """Collect, then move every object this process holds into the permanent generation, where no later
    collection of Python's garbage collector walks it (``gc.freeze``); objects made from now on are collected as
    before. For a long-lived process once its start-up is over: what it loaded until then lives as long as it does.

    Why, in Spark's Python workers: PySpark's daemon runs a full collection in a reused worker after every task
    (``pyspark/daemon.py``), which walked the worker's whole heap, its modules and compiled readers (30,000-100,000
    objects, 20-200 ms a collection on two busy cores), twice a micro-batch, on the cores the driver's warehouse
    writes need. In the job's driver: a full collection walked pyspark's, chDB's and rtap's start-up objects
    (65-145 ms on ``rtap up``, a batch's stall each time).
    """
    gc.collect()
    gc.freeze()


@functools.cache
def _readers(
    formats: tuple[tuple[str, str], ...], max_record_bytes: int, max_future_skew_s: float
) -> dict[str, SourceReader]:
    """One reader per topic, per process and set of limits (building one compiles its schema)."""
    return {
        topic: reader(name, max_record_bytes=max_record_bytes, max_future_skew_s=max_future_skew_s)
        for topic, name in formats
    }


@functools.cache
def _worker_readers(
    formats: tuple[tuple[str, str], ...], max_record_bytes: int, max_future_skew_s: float
) -> dict[str, SourceReader]:
    """:func:`_readers` in a Spark Python worker: its first task ends its start-up, so the worker's heap is frozen
    then (:func:`freeze_heap`), once; other callers of the readers (benchmarks) keep their heap as it is."""
    readers = _readers(formats, max_record_bytes, max_future_skew_s)
    freeze_heap()
    return readers


def _parse_partition(
    batches: Iterator[pa.RecordBatch],
    *,
    formats: tuple[tuple[str, str], ...],
    max_record_bytes: int,
    max_future_skew_s: float,
    raw_budget: int,
) -> Iterator[pa.RecordBatch]:
    """Runs in a Python worker, once per Spark task: each Arrow batch of Kafka records -> one IPC stream. The
    task's dead letters keep at most ``raw_budget`` bytes of payload in full (:func:`bound_raw`)."""
    readers = _worker_readers(formats, max_record_bytes, max_future_skew_s)
    held = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        parsed, kept = bound_raw(parse_records(batch, readers, max_raw_bytes=max_record_bytes), raw_budget - held)
        held += kept
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, parsed.schema) as writer:
            writer.write_batch(parsed)
        stream = sink.getvalue()
        offsets = pa.array([0, stream.size], pa.int32()).buffers()[1]
        value = pa.Array.from_buffers(pa.binary(), 1, [None, offsets, stream])  # no copy of the stream
        yield pa.RecordBatch.from_arrays([value], names=[_PARSED])


class ParseStage:
    """The one Spark stage of every micro-batch on one SparkSession: the batch of Spark's Kafka source, parsed and
    validated in Spark's Python workers, back on the driver as one Arrow table
    (``rtap.stream.transforms.parsed_schema``). ``formats``: each topic's source format.

    Built once per session, not per batch: what ``DataFrame.mapInArrow`` does on every call (a new Python UDF,
    its function pickled and sent to the JVM, the session's parallelism asked for) cost ~25 ms of py4j calls on
    the driver before every batch (py-spy on ``rtap up`` at 10,000 events/s: 26 of a 330 ms batch). The UDF is
    made once, its Java side is created on first use and kept, and each batch only applies it (pyspark's own
    ``mapInArrow``, less the rebuild). A new session (a new JVM) needs a new stage.
    """

    def __init__(
        self,
        spark: SparkSession,
        *,
        formats: Mapping[str, str],
        max_record_bytes: int,
        max_future_skew_s: float,
        max_batch_bytes: int,
    ) -> None:
        # One task per core, not one per Kafka partition: each task pays a Python worker's round trip (measured at
        # 1,000 events/s: 6 tasks 427 ms, 2 tasks 255 ms a batch). What a task holds is bounded by the batch cap,
        # and what its dead letters bring to the driver by its share of max_batch_bytes (bound_raw).
        self._tasks = spark.sparkContext.defaultParallelism
        parse = functools.partial(
            _parse_partition,
            formats=tuple(sorted(formats.items())),
            max_record_bytes=max_record_bytes,
            max_future_skew_s=max_future_skew_s,
            raw_budget=max_batch_bytes // max(self._tasks, 1),
        )
        self._udf = pandas_udf(  # type: ignore[call-overload]  # how mapInArrow builds its UDF
            parse, returnType=f"{_PARSED} binary", functionType=PythonEvalType.SQL_MAP_ARROW_ITER_UDF
        )

    def __call__(self, records: DataFrame) -> pa.Table:
        kafka = records.coalesce(self._tasks)
        column = self._udf(*(kafka[name] for name in KAFKA_NAMES))
        parsed = DataFrame(kafka._jdf.mapInArrow(column._jc, False, None), kafka.sparkSession)
        streams = parsed.toArrow().column(_PARSED)
        tables = [pa.ipc.open_stream(value.as_buffer()).read_all() for chunk in streams.chunks for value in chunk]
        return pa.concat_tables(tables) if tables else parsed_schema().empty_table()


def sample_records(spark: SparkSession, samples: Mapping[str, Sequence[bytes]], now: datetime) -> DataFrame:
    """``samples`` (topic -> record values) as the Kafka source's columns, stamped ``now``, offsets from 0 in each
    topic's partition 0. From an Arrow table, a local relation: a list of rows would reach the JVM through a Python
    RDD job, whose own pool of Python workers (two processes and their daemon, ~160 MB) the parse stage never uses."""
    stamp = now.replace(microsecond=0)  # the stage casts to milliseconds, refusing to drop any digit
    topics = [topic for topic, values in samples.items() for _ in values]
    values = [value for topic_values in samples.values() for value in topic_values]
    table = pa.table(
        {
            "key": pa.nulls(len(values), pa.binary()),
            "value": pa.array(values, pa.binary()),
            "topic": pa.array(topics, pa.string()),
            "partition": pa.array([0] * len(values), pa.int32()),
            "offset": pa.array([o for topic_values in samples.values() for o in range(len(topic_values))], pa.int64()),
            "timestamp": pa.array([stamp] * len(values), pa.timestamp("ms", tz="UTC")),
        }
    )
    return spark.createDataFrame(table, KAFKA_COLUMNS)


def warm_up(
    spark: SparkSession, stage: ParseStage, samples: Mapping[str, Sequence[bytes]], *, rounds: int
) -> list[float]:
    """Run the parse stage (``stage``, of ``spark``) ``rounds`` times on ``samples`` (topic -> record values),
    before the first micro-batch; the seconds each round took.

    Why: the first batch that holds records starts Spark's Python workers (a process each, which imports pyarrow,
    rtap and its readers and compiles the formats' schemas) and has the JVM generate and compile the stage's
    code. Measured on ``rtap up --no-generator`` at 1,000 events/s: that first batch took 3.2 s instead of
    ~0.4 s, and the first minute's freshness p99 was 3.6 s against 0.7 s in the next; with three rounds here
    (~3.9 s before the query starts) it took 1.0 s and the first minute's p99 was 1.2 s, and the first rows after
    ``rtap up`` came no later (``bench_startup``: 13.1 -> 12.7 s). The rest of that first batch is the Kafka
    consumers' start, which needs the real topic. The workers are reused (``spark.python.worker.reuse``) while
    they are busy at least once a minute, which the job sees to (``rtap.stream.job.KEEP_WARM_S``), so the rounds
    pay once per JVM.
    """
    frame = sample_records(spark, samples, datetime.now(UTC))
    seconds = []
    for _ in range(rounds):
        clock = time.perf_counter()
        stage(frame)
        seconds.append(time.perf_counter() - clock)
    return seconds
