"""Topic administration against the real broker: idempotent creation, existing topics as they are, clear errors."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewPartitions, NewTopic

from rtap.errors import BrokerError
from rtap.ingest.topics import ensure_topics, topic_partitions
from rtap.kafka_admin import list_topics
from rtap.settings import KafkaSettings, Settings
from tests.support.paths import free_port


def _unique_topics(settings: Settings, unique_name: Callable[[str], str], **update: object) -> KafkaSettings:
    names = {"topic": unique_name("events"), "browser_topic": unique_name("browser"), "dlq_topic": unique_name("dlq")}
    return settings.kafka.model_copy(update={**names, **update})


def test_ensure_topics_twice_creates_once(kafka_settings: Settings, unique_name: Callable[[str], str]) -> None:
    kafka = _unique_topics(kafka_settings, unique_name, partitions=3)

    first = ensure_topics(kafka)
    second = ensure_topics(kafka)

    assert first == [kafka.topic, kafka.browser_topic, kafka.dlq_topic]
    assert second == []
    assert topic_partitions(kafka, kafka.topic) == 3
    assert topic_partitions(kafka, kafka.dlq_topic) == 3
    assert {kafka.topic, kafka.dlq_topic} <= set(list_topics(kafka))


def test_existing_topics_are_used_with_the_partitions_they_have(
    kafka_settings: Settings, unique_name: Callable[[str], str]
) -> None:
    """A team's dead-letter topic made with one partition, an input topic an operator grew: neither is refused,
    whatever RTAP_KAFKA_PARTITIONS says, and none is changed."""
    kafka = _unique_topics(kafka_settings, unique_name, partitions=2)
    admin = AdminClient(dict(kafka.client_config()))
    admin.create_topics([NewTopic(kafka.dlq_topic, num_partitions=1, replication_factor=1)])[kafka.dlq_topic].result(30)
    assert ensure_topics(kafka) == [kafka.topic, kafka.browser_topic]
    admin.create_partitions([NewPartitions(kafka.topic, 5)])[kafka.topic].result(30)
    deadline = time.monotonic() + 30
    while topic_partitions(kafka, kafka.topic) != 5 and time.monotonic() < deadline:  # the broker's metadata
        time.sleep(0.1)

    for partitions in (1, 2, 4, 6):
        assert ensure_topics(kafka.model_copy(update={"partitions": partitions})) == []
    assert [topic_partitions(kafka, name) for name in (kafka.topic, kafka.browser_topic, kafka.dlq_topic)] == [5, 2, 1]


def test_impossible_replication_factor_is_a_broker_error(
    kafka_settings: Settings, unique_name: Callable[[str], str]
) -> None:
    kafka = _unique_topics(kafka_settings, unique_name, replication_factor=3)

    with pytest.raises(BrokerError, match=rf"creating Kafka topic {kafka.topic} failed: .*[Rr]eplication"):
        ensure_topics(kafka)


def test_no_broker_is_a_one_line_broker_error() -> None:
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}")

    with pytest.raises(BrokerError, match=r"did not answer within 1s .*rtap kafka start") as error:
        ensure_topics(kafka, timeout_s=1.0)
    assert "\n" not in str(error.value)
