"""``rtap produce`` against the real broker: every record arrives where the ground truth says it does."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime

import orjson
import pytest
from confluent_kafka import Consumer, Message, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewPartitions, NewTopic

from rtap.generate import GroundTruth
from rtap.generate.partition import kafka_partition
from rtap.ingest.producer import produce_run
from rtap.ingest.topics import ensure_topics, topic_partitions
from rtap.settings import Settings


@pytest.fixture
def settings(
    kafka_settings: Settings, unique_name: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """The session broker, topics of this test only, a data dir of this test only (truth files)."""
    kafka = kafka_settings.kafka.model_copy(update={"topic": unique_name("events"), "dlq_topic": unique_name("dlq")})
    return kafka_settings.model_copy(update={"kafka": kafka, "data_dir": tmp_path_factory.mktemp("rtap-produce")})


def _consume_all(
    settings: Settings, expected: int, timeout_s: float = 60.0, partitions: int | None = None
) -> list[Message]:
    kafka = settings.kafka
    consumer = Consumer({**kafka.client_config(), "group.id": "rtap-test", "enable.auto.commit": False})
    consumer.assign([TopicPartition(kafka.topic, p, 0) for p in range(partitions or kafka.partitions)])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=10_000, timeout=1.0):
                assert message.error() is None, message.error()
                messages.append(message)
        # Nothing beyond what was reported produced.
        messages.extend(consumer.consume(num_messages=100, timeout=1.0))
    finally:
        consumer.close()
    return messages


def test_records_arrive_keyed_by_session_on_the_predicted_partition(settings: Settings) -> None:
    report = produce_run(settings, rate=0, count=3_000, seed=11)

    messages = _consume_all(settings, report.produced)

    assert report.failed == 0
    assert report.scheduled == 3_000
    assert len(messages) == report.produced == report.delivered
    for message in messages:
        key = message.key()
        assert key is not None
        assert message.partition() == kafka_partition(key, settings.kafka.partitions)
        try:
            event = orjson.loads(message.value() or b"")
        except orjson.JSONDecodeError:
            continue  # a deliberately malformed record: only its key is meaningful
        if isinstance(event, dict) and isinstance(event.get("session_id"), str):
            assert event["session_id"].encode() == key
    truth = GroundTruth.from_json(report.truth_path.read_bytes())
    assert truth.totals().produced == report.produced
    assert (settings.paths.truth / "latest.json").read_bytes() == report.truth_path.read_bytes()


def test_a_grown_topic_is_predicted_with_the_partitions_it_has(settings: Settings) -> None:
    """An operator grew the topic beyond RTAP_KAFKA_PARTITIONS: the truth predicts with the topic's own count."""
    kafka = settings.kafka
    grown = kafka.partitions + 3
    ensure_topics(kafka)
    admin = AdminClient(dict(kafka.client_config()))
    admin.create_partitions([NewPartitions(kafka.topic, grown)])[kafka.topic].result(30)
    deadline = time.monotonic() + 30
    while topic_partitions(kafka, kafka.topic) != grown and time.monotonic() < deadline:  # the broker's metadata
        time.sleep(0.1)

    report = produce_run(settings, rate=0, count=2_000, seed=12)

    messages = _consume_all(settings, report.produced, partitions=grown)
    assert report.failed == 0
    assert len(messages) == report.produced
    assert GroundTruth.from_json(report.truth_path.read_bytes()).partitions == grown
    for message in messages:
        assert message.partition() == kafka_partition(message.key() or b"", grown)
    assert {message.partition() for message in messages} == set(range(grown))


def test_fixed_rate_run_keeps_the_open_loop_schedule(settings: Settings) -> None:
    rate, count = 100.0, 100
    report = produce_run(settings, rate=rate, count=count, seed=5)

    messages = _consume_all(settings, report.produced)

    assert report.scheduled == count
    # The last event is due (count - 1) / rate after the first: an open loop cannot finish sooner.
    assert report.elapsed_s >= (count - 1) / rate
    times = []
    for message in messages:
        try:
            times.append(datetime.fromisoformat(orjson.loads(message.value() or b"")["event_time"]).timestamp())
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue  # malformed on purpose
    # Event times are the intended send times: a 10 ms grid (late ones are shifted by whole seconds, so
    # they stay on it). Timestamps carry milliseconds, so a time may sit up to 1 ms (0.1 step) off.
    reference = statistics.median_low(times)
    steps = [(t - reference) * rate for t in times]
    on_grid = [s for s in steps if abs(s - round(s)) <= 0.15]
    assert len(on_grid) >= 0.95 * len(times)
    assert max(times) - min(t for t in times if t > reference - 60) <= (count - 1) / rate + 0.002


def _produce_env(settings: Settings) -> dict[str, str]:
    """`rtap produce`'s environment: this test's data directory, broker and topics."""
    kafka = settings.kafka
    return {
        **os.environ,
        "RTAP_DATA_DIR": str(settings.data_dir),
        "RTAP_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "RTAP_KAFKA_TOPIC": kafka.topic,
        "RTAP_KAFKA_DLQ_TOPIC": kafka.dlq_topic,
    }


def test_undeliverable_records_are_counted_and_fail_the_run(settings: Settings) -> None:
    kafka = settings.kafka
    # A topic that refuses every batch: the broker answers MESSAGE_TOO_LARGE for each one.
    topic = NewTopic(
        kafka.topic, num_partitions=kafka.partitions, replication_factor=1, config={"max.message.bytes": "64"}
    )
    admin = AdminClient(dict(kafka.client_config()))  # kept referenced: a destroyed client fails its futures
    admin.create_topics([topic])[kafka.topic].result(30)
    ensure_topics(kafka)
    env = _produce_env(settings)

    result = subprocess.run(
        [sys.executable, "-m", "rtap", "produce", "--rate", "0", "--count", "50"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 1, result.stderr
    assert "were not delivered" in result.stderr
    assert "too large" in result.stderr.lower()
    assert not (settings.paths.truth / "latest.json").exists()
    assert len(list(settings.paths.truth.glob("*.json"))) == 1


def test_cli_produce_prints_the_run_and_writes_the_truth(settings: Settings) -> None:
    env = _produce_env(settings)

    result = subprocess.run(
        [sys.executable, "-m", "rtap", "produce", "--rate", "0", "--count", "500", "--seed", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "-seed3-" in result.stdout
    truth = GroundTruth.from_json((settings.paths.truth / "latest.json").read_bytes())
    assert truth.totals().produced == len(_consume_all(settings, truth.totals().produced))


def test_metrics_count_what_the_run_report_counts(settings: Settings, unique_name: Callable[[str], str]) -> None:
    from prometheus_client import CollectorRegistry

    from rtap import metrics

    registry = CollectorRegistry()
    registry.register(metrics.PRODUCER)

    def counted() -> tuple[float | None, float | None]:
        return (
            registry.get_sample_value("rtap_producer_records_sent_total"),
            registry.get_sample_value("rtap_producer_delivery_failures_total"),
        )

    sent, failed = counted()
    assert sent is not None
    assert failed is not None
    report = produce_run(settings, rate=0, count=2_000, seed=7)
    assert counted() == (sent + report.produced, failed)
    assert report.failed == 0

    # A topic refusing every batch: each record is a delivery failure, in the report and in the metric alike.
    refusing = settings.kafka.model_copy(update={"topic": unique_name("refusing")})
    admin = AdminClient(dict(refusing.client_config()))
    topic = NewTopic(refusing.topic, refusing.partitions, 1, config={"max.message.bytes": "64"})
    admin.create_topics([topic])[refusing.topic].result(30)
    sent, failed = counted()
    assert sent is not None
    assert failed is not None
    report = produce_run(settings.model_copy(update={"kafka": refusing}), rate=0, count=50, seed=7)
    assert report.failed == report.produced > 0
    assert counted() == (sent + report.produced, failed + report.failed)
