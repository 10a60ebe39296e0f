"""Build the SparkSession of the stream job: local by default, any cluster through ``--master``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pyspark.sql import SparkSession

from rtap.errors import DependencyError
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
        # The contract's generated validation method exceeds HotSpot's 8 KB JIT limit and would run interpreted
        # (JFR: ~85% of task time in it); compiling it cut validation CPU by ~30% in bench/bench_classify.py.
        .config("spark.driver.extraJavaOptions", "-XX:-DontCompileHugeMethods")
        .config("spark.executor.extraJavaOptions", "-XX:-DontCompileHugeMethods")
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
