"""The Spark side of the job: the driver JVM's options, and the parse stage through a real local SparkSession."""

from __future__ import annotations

import gc
import shlex
import weakref
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pytest
from py4j.protocol import Py4JJavaError
from pydantic import SecretStr

from rtap.errors import DependencyError
from rtap.runtime.jvm import archive_path
from rtap.settings import (
    JAVA_REDACTION_REGEX,
    MSK_IAM_CALLBACK_HANDLER,
    MSK_IAM_LOGIN_MODULE,
    KafkaSettings,
    Settings,
)
from rtap.stream import spark as spark_module
from rtap.stream.spark import (
    EXIT_ON_OOM,
    ParseStage,
    connector_jars,
    driver_java_options,
    forget_jvm,
    freeze_heap,
    msk_iam_jars,
    sample_records,
)
from rtap.stream.transforms import SHORT_RAW_BYTES, parsed_schema
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
from tests.support.tls import make_certificates


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


def _java_consumer(spark, jars: list[Path], config: dict[str, str]) -> None:
    """Build (and close) Kafka's Java consumer from ``config`` in Spark's JVM, with ``jars`` in a class loader of
    their own: the constructor parses every property, the JAAS line, the PEM stores, and loads the login module
    and callback handler, without connecting anywhere."""
    gateway, jvm = spark.sparkContext._gateway, spark._jvm
    urls = gateway.new_array(jvm.java.net.URL, len(jars))
    for i, jar in enumerate(jars):
        urls[i] = jvm.java.io.File(str(jar.resolve())).toURI().toURL()
    loader = jvm.java.net.URLClassLoader(urls, jvm.java.lang.ClassLoader.getSystemClassLoader())
    properties = jvm.java.util.Properties()
    deserializer = "org.apache.kafka.common.serialization.ByteArrayDeserializer"
    for key, value in {**config, "key.deserializer": deserializer, "value.deserializer": deserializer}.items():
        properties.setProperty(key, value)
    types = gateway.new_array(jvm.java.lang.Class, 1)
    types[0] = properties.getClass()
    arguments = gateway.new_array(jvm.java.lang.Object, 1)
    arguments[0] = properties
    # JAAS finds login modules, and Kafka configured classes, through the thread's context class loader (py4j
    # runs this Python thread's calls on one JVM thread).
    thread = jvm.java.lang.Thread.currentThread()
    previous = thread.getContextClassLoader()
    thread.setContextClassLoader(loader)
    try:
        consumer_class = jvm.java.lang.Class.forName("org.apache.kafka.clients.consumer.KafkaConsumer", True, loader)
        consumer = consumer_class.getConstructor(types).newInstance(arguments)
        # Through reflection: py4j caches methods by class name, and each call has a class loader of its own.
        no_types, no_arguments = gateway.new_array(jvm.java.lang.Class, 0), gateway.new_array(jvm.java.lang.Object, 0)
        consumer_class.getMethod("close", no_types).invoke(consumer, no_arguments)
    finally:
        thread.setContextClassLoader(previous)


def test_the_java_client_takes_the_msk_iam_properties_with_the_resolved_jars(spark) -> None:
    iam = KafkaSettings(
        bootstrap_servers="127.0.0.1:9098",  # resolvable: the constructor checks; nothing connects
        security_protocol="SASL_SSL",
        sasl_mechanism="AWS_MSK_IAM",
        aws_region="eu-west-1",
        aws_profile="analytics",
    )
    settings = Settings(jars_dir=REPO_ROOT / "jars" / "lib", kafka=iam)
    jars = connector_jars(settings.jars_dir / "spark") + msk_iam_jars(settings)
    config = iam.java_client_config()

    _java_consumer(spark, jars, config)
    with pytest.raises(Py4JJavaError):  # the check is real: a handler that does not exist is refused
        _java_consumer(spark, jars, {**config, "sasl.client.callback.handler.class": MSK_IAM_LOGIN_MODULE + "X"})


def test_the_java_client_takes_the_tls_and_scram_properties(spark, tmp_path: Path) -> None:
    certificates = make_certificates(tmp_path, client_key_password="key pass")
    scram = KafkaSettings(
        bootstrap_servers="127.0.0.1:9096", security_protocol="SASL_SSL", ssl_ca_file=certificates.ca,
        sasl_mechanism="SCRAM-SHA-512", sasl_username="rtap", sasl_password=SecretStr('pa"ss'),
    )  # fmt: skip
    mutual = KafkaSettings(
        bootstrap_servers="127.0.0.1:9094", security_protocol="SSL", ssl_ca_file=certificates.ca,
        ssl_certificate_file=certificates.client_certificate, ssl_key_file=certificates.client_key,
        ssl_key_password=SecretStr("key pass"),
    )  # fmt: skip
    jars = connector_jars(REPO_ROOT / "jars" / "lib" / "spark")
    for kafka in (scram, mutual):
        _java_consumer(spark, jars, kafka.java_client_config())  # the PEM stores are parsed, the key decrypted
    with pytest.raises(Py4JJavaError):
        _java_consumer(spark, jars, {**mutual.java_client_config(), "ssl.key.password": "wrong"})


def test_spark_hides_every_secret_of_the_java_client_with_rtaps_redaction_pattern(spark, tmp_path: Path) -> None:
    """Spark's own redaction (Utils.redact, as its UI and logs apply it) over the source's options."""
    certificates = make_certificates(tmp_path, client_key_password="key pass")
    clients = (
        KafkaSettings(
            security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username="rtap",
            sasl_password=SecretStr("hunter2"),
        ),
        KafkaSettings(
            security_protocol="SSL", ssl_certificate_file=certificates.client_certificate,
            ssl_key_file=certificates.client_key, ssl_key_password=SecretStr("key pass"),
        ),
        KafkaSettings(
            bootstrap_servers="b-1.c.x.c2.kafka.eu-west-1.amazonaws.com:9098", security_protocol="SASL_SSL",
            sasl_mechanism="AWS_MSK_IAM",
        ),
    )  # fmt: skip
    jvm = spark._jvm
    converters = jvm.scala.jdk.javaapi.CollectionConverters

    def redacted(options: dict[str, str], pattern: str | None) -> set[str]:
        conf = jvm.org.apache.spark.SparkConf(False)
        if pattern is not None:
            conf.set("spark.redaction.regex", pattern)
        pairs = jvm.java.util.ArrayList()
        for key, value in options.items():
            pairs.add(jvm.scala.Tuple2(key, value))
        shown = converters.asJava(jvm.org.apache.spark.util.Utils.redact(conf, converters.asScala(pairs).toSeq()))
        return {pair._1() for pair in shown if pair._2() == "*********(redacted)"}

    secrets = {"kafka.sasl.jaas.config", "kafka.ssl.keystore.key", "kafka.ssl.key.password"}
    missed_by_default = set()
    for kafka in clients:
        options = {f"kafka.{key}": value for key, value in kafka.java_client_config().items()}
        assert redacted(options, JAVA_REDACTION_REGEX) == secrets & set(options)
        missed_by_default |= secrets & set(options) - redacted(options, None)
    # Spark's default pattern alone shows MSK IAM's JAAS line and the inline key.
    assert missed_by_default == {"kafka.sasl.jaas.config", "kafka.ssl.keystore.key"}


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
        parsed = ParseStage(
            spark, formats=FORMATS, max_record_bytes=4096, max_future_skew_s=3600.0, max_batch_bytes=1 << 27
        )(frame)
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    assert parsed.schema == parsed_schema()
    order = [("kafka_topic", "ascending"), ("kafka_partition", "ascending"), ("kafka_offset", "ascending")]
    expected = parse_locally(kafka_records(records, topics)).sort_by(order)
    assert expected.num_rows == len(records)
    assert parsed.sort_by(order).equals(expected)


def test_dead_letters_bring_at_most_their_share_of_the_batch_bytes_to_the_driver(spark) -> None:
    """A batch of big invalid records (not JSON, 3,000 bytes each): past each task's share of max_batch_bytes a
    dead letter keeps SHORT_RAW_BYTES of its payload, and every record is still there with its real size."""
    blob = b"x" * 3000
    records: list[tuple[int, int, object]] = [(p, o, blob) for p in range(4) for o in range(20)]
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "7")  # the budget spans a task's Arrow batches
    try:
        frame = kafka_batch(spark, records, [TOPIC] * len(records)).repartition(4, "partition")
        stage = ParseStage(
            spark, formats=FORMATS, max_record_bytes=4096, max_future_skew_s=3600.0, max_batch_bytes=40_000
        )
        parsed = stage(frame)
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    assert parsed.num_rows == len(records)
    assert set(parsed.column("raw_size").to_pylist()) == {3000}
    kept = parsed.column("raw").to_pylist()
    assert sum(map(len, kept)) <= 40_000 + len(records) * SHORT_RAW_BYTES
    assert {len(raw) for raw in kept} == {3000, SHORT_RAW_BYTES}
    assert all(raw == blob[: len(raw)] for raw in kept)


def test_the_warm_up_records_come_from_the_driver_not_from_a_python_job(spark) -> None:
    """A local relation: no Python RDD job, so no second pool of Python workers beside the stage's."""
    now = datetime(2026, 12, 7, 2, 30, 15, 123456, tzinfo=UTC)
    frame = sample_records(spark, {TOPIC: [b"{}", b"x"], LEGACY_TOPIC: [b"{}"]}, now)
    assert "LocalRelation" in frame._jdf.queryExecution().analyzed().toString()
    assert [tuple(row) for row in frame.collect()] == [
        (None, b"{}", TOPIC, 0, 0, datetime(2026, 12, 7, 2, 30, 15)),  # the session's UTC, whole seconds
        (None, b"x", TOPIC, 0, 1, datetime(2026, 12, 7, 2, 30, 15)),
        (None, b"{}", LEGACY_TOPIC, 0, 0, datetime(2026, 12, 7, 2, 30, 15)),
    ]


def test_an_empty_micro_batch_is_an_empty_table(spark) -> None:
    parsed = ParseStage(
        spark, formats=FORMATS, max_record_bytes=4096, max_future_skew_s=3600.0, max_batch_bytes=1 << 27
    )(kafka_batch(spark, []))
    assert parsed.num_rows == 0
    assert parsed.schema == parsed_schema()
    assert isinstance(parsed, pa.Table)


@pytest.fixture
def thawed():
    """A test that freezes this process's heap leaves it thawed for the next."""
    gc.unfreeze()
    yield
    gc.unfreeze()


class _Node:
    """An object that refers to itself: garbage only the cycle collector frees."""

    def __init__(self) -> None:
        self.me = self


@pytest.mark.usefixtures("thawed")
def test_a_frozen_heap_is_left_out_of_collections_and_what_comes_after_is_still_collected() -> None:
    before = _Node()
    frozen = weakref.ref(before)
    freeze_heap()
    del before
    after = _Node()
    collectable = weakref.ref(after)
    del after
    gc.collect()
    assert collectable() is None
    assert frozen() is not None  # alive at the freeze: never walked again
    gc.unfreeze()
    gc.collect()
    assert frozen() is None


@pytest.mark.usefixtures("thawed")
def test_a_python_worker_freezes_its_heap_once_its_readers_are_built() -> None:
    """The first task of a worker builds its readers; PySpark's collection after every later task then walks only
    what that task made."""
    spark_module._worker_readers.cache_clear()
    try:
        readers = spark_module._worker_readers(tuple(sorted(FORMATS.items())), 4096, 3600.0)
        assert set(readers) == set(FORMATS)
        assert gc.get_freeze_count() > 0
        gc.unfreeze()
        assert spark_module._worker_readers(tuple(sorted(FORMATS.items())), 4096, 3600.0) is readers
        assert gc.get_freeze_count() == 0  # built once per worker, frozen once
    finally:
        spark_module._worker_readers.cache_clear()


@pytest.mark.usefixtures("thawed")
def test_a_dead_jvms_session_is_thawed_so_that_its_objects_can_be_collected(monkeypatch: pytest.MonkeyPatch) -> None:
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    # forget_jvm clears PySpark's references to the session: the other tests' session gets them back after this one.
    for owner, name in [(SparkContext, "_gateway"), (SparkContext, "_jvm"), (SparkContext, "_active_spark_context"),
                        (SparkSession, "_instantiatedSession"), (SparkSession, "_activeSession")]:  # fmt: skip
        monkeypatch.setattr(owner, name, getattr(owner, name))
    freeze_heap()
    assert gc.get_freeze_count() > 0
    forget_jvm(SimpleNamespace(sparkContext=SimpleNamespace(_gateway=None)))  # type: ignore[arg-type]
    assert gc.get_freeze_count() == 0
