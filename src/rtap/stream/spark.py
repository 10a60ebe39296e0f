"""Build the SparkSession of the stream job: local by default, any cluster through ``--master``."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

from pyspark.sql import SparkSession

from rtap.errors import DependencyError
from rtap.jvm import class_sharing_options
from rtap.settings import Settings

# The Kafka source and its client: resolved by `make jars` from jars/pom.xml (profile `spark`), pinned to the
# exact pyspark version. Nothing else goes on the class path: pyspark ships the rest.
CONNECTOR_JARS = (
    "spark-sql-kafka-0-10_",
    "spark-token-provider-kafka-0-10_",
    "kafka-clients-",
    "commons-pool2-",
)


def connector_jars(directory: Path) -> list[Path]:
    """The connector jars in ``directory``, or a clear error naming the command that fetches them."""
    jars = sorted(p for p in directory.glob("*.jar") if p.name.startswith(CONNECTOR_JARS))
    missing = [prefix for prefix in CONNECTOR_JARS if not any(j.name.startswith(prefix) for j in jars)]
    if missing:
        raise DependencyError(
            f"Spark's Kafka connector jars are missing in {directory} ({', '.join(missing)}): run `make jars`"
        )
    return jars


# The contract's generated validation method exceeds HotSpot's 8 KB JIT limit and would run interpreted
# (JFR: ~85% of task time in it); compiling it cut validation CPU by ~30% in bench/bench_classify.py.
COMPILE_HUGE_METHODS = "-XX:-DontCompileHugeMethods"


def driver_java_options(settings: Settings) -> list[str]:
    """The driver JVM's options. The class-data archive is the driver's only: a cluster's executors run
    other JVMs, on other class paths."""
    return [COMPILE_HUGE_METHODS, *class_sharing_options(settings, "spark")]


def build_session(settings: Settings) -> SparkSession:
    """A SparkSession for the stream job. Must run before any other SparkSession in the process."""
    if shutil.which("java") is None:
        raise DependencyError("Java 17+ is required by Spark and was not found on PATH")
    stream = settings.stream
    builder = (
        SparkSession.builder.appName(stream.app_name)
        .master(stream.master)
        .config("spark.jars", ",".join(str(j) for j in connector_jars(settings.jars_dir / "spark")))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(stream.shuffle_partitions))
        .config("spark.driver.memory", stream.driver_memory)
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.adaptive.enabled", "false")  # tiny per-batch plans: AQE re-planning costs more than it saves
        .config("spark.sql.streaming.metricsEnabled", "true")
        # Spark's own metrics in Prometheus' format on the UI port (driver JVM, scheduler, executors), under a
        # fixed namespace instead of the application id, so their names survive a restart
        # (deploy/prometheus scrapes them; rtap's own figures come from rtap.metrics).
        .config("spark.ui.prometheus.enabled", "true")
        .config("spark.metrics.namespace", "rtap")
        .config("spark.metrics.conf.*.sink.prometheusServlet.class", "org.apache.spark.metrics.sink.PrometheusServlet")
        .config("spark.metrics.conf.*.sink.prometheusServlet.path", "/metrics/prometheus")
        .config("spark.metrics.conf.driver.source.jvm.class", "org.apache.spark.metrics.source.JvmSource")
        .config("spark.driver.extraJavaOptions", shlex.join(driver_java_options(settings)))
        .config("spark.executor.extraJavaOptions", COMPILE_HUGE_METHODS)
    )
    if stream.master.startswith(("local", "spark://127.0.0.1:", "spark://localhost:")):
        # Local mode, or a standalone cluster on this machine (rtap.cluster): executors reach the driver on
        # loopback. The driver and the Spark UI listen on ui_host only (loopback unless configured). The UI
        # ignores spark.driver.bindAddress and reads SPARK_LOCAL_IP, which the JVM launched below inherits.
        os.environ["SPARK_LOCAL_IP"] = stream.ui_host
        builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", stream.ui_host)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session


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
