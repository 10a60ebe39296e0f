"""The Spark side of the job: the driver JVM's options, and the parse stage through a real local SparkSession."""

from __future__ import annotations

import shlex
import zipfile
from pathlib import Path

import pyarrow as pa
import pytest

from rtap.errors import DependencyError
from rtap.runtime.jvm import archive_path
from rtap.settings import MSK_IAM_CALLBACK_HANDLER, MSK_IAM_LOGIN_MODULE, KafkaSettings, Settings
from rtap.stream.spark import EXIT_ON_OOM, driver_java_options, msk_iam_jars, parse_batch
from rtap.stream.transforms import parsed_schema
from tests.support.paths import REPO_ROOT
from tests.support.records import (
    FORMATS,
    LEGACY_TOPIC,
    TOPIC,
    event,
    kafka_batch,
    kafka_records,
    legacy_click,
    parse_locally,
)


def test_the_driver_exits_on_out_of_memory_and_maps_the_spark_archive_when_there_is_one(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", jars_dir=tmp_path / "jars with space")
    assert driver_java_options(settings) == [EXIT_ON_OOM]

    archive = archive_path(settings, "spark")
    archive.parent.mkdir(parents=True)
    archive.touch()
    options = driver_java_options(settings)
    assert options == [EXIT_ON_OOM, f"-XX:SharedArchiveFile={archive}"]
    # Spark splits extraJavaOptions like a shell: a path with a space survives shlex quoting.
    assert shlex.split(shlex.join(options)) == options


def test_the_msk_iam_jars_join_the_class_path_only_for_aws_msk_iam(tmp_path: Path) -> None:
    iam = KafkaSettings(
        bootstrap_servers="b-1.c.x.c2.kafka.eu-west-1.amazonaws.com:9098",
        security_protocol="SASL_SSL",
        sasl_mechanism="AWS_MSK_IAM",
    )
    assert msk_iam_jars(Settings(jars_dir=REPO_ROOT / "jars" / "lib")) == []
    with pytest.raises(DependencyError, match="run `make jars`"):
        msk_iam_jars(Settings(jars_dir=tmp_path, kafka=iam))

    jars = msk_iam_jars(Settings(jars_dir=REPO_ROOT / "jars" / "lib", kafka=iam))

    # The classes the Java client's JAAS line and callback handler name are in the resolved jar.
    (auth,) = [jar for jar in jars if jar.name.startswith("aws-msk-iam-auth-")]
    with zipfile.ZipFile(auth) as archive:
        names = set(archive.namelist())
    for java_class in (MSK_IAM_LOGIN_MODULE, MSK_IAM_CALLBACK_HANDLER):
        assert java_class.replace(".", "/") + ".class" in names
    assert any(jar.name.startswith("sts-") for jar in jars)  # the AWS SDK it needs came with it
    assert not any(jar.name.startswith(("jackson-", "slf4j-", "kafka-clients-")) for jar in jars)  # Spark's own


def test_the_spark_stage_parses_every_record_as_the_workers_function_does(spark) -> None:
    """Through mapInArrow and the Arrow IPC streams, across partitions and Arrow batches, nothing lost or changed."""
    records: list[tuple[int, int, object]] = [(p, o, event(p * 1000 + o)) for p in range(3) for o in range(40)]
    records += [(1, 40, b"{broken"), (2, 40, None), (0, 40, event(9, user_id=7))]
    topics = [TOPIC] * len(records)
    # And the previous system's topic, same partitions and offsets: other records.
    records += [(p, o, legacy_click(p * 1000 + o)) for p in range(2) for o in range(10)] + [(0, 10, b"{}")]
    topics += [LEGACY_TOPIC] * 21
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "7")  # several Arrow batches per task
    try:
        frame = kafka_batch(spark, records, topics).repartition(3, "partition")
        parsed = parse_batch(frame, formats=FORMATS, max_record_bytes=4096, max_future_skew_s=3600.0)
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    assert parsed.schema == parsed_schema()
    order = [("kafka_topic", "ascending"), ("kafka_partition", "ascending"), ("kafka_offset", "ascending")]
    expected = parse_locally(kafka_records(records, topics)).sort_by(order)
    assert expected.num_rows == len(records)
    assert parsed.sort_by(order).equals(expected)


def test_an_empty_micro_batch_is_an_empty_table(spark) -> None:
    parsed = parse_batch(kafka_batch(spark, []), formats=FORMATS, max_record_bytes=4096, max_future_skew_s=3600.0)
    assert parsed.num_rows == 0
    assert parsed.schema == parsed_schema()
    assert isinstance(parsed, pa.Table)
