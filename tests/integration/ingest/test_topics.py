"""Topic administration against the real broker: idempotent creation, refused mismatches, clear errors."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

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


def test_input_topic_with_other_partition_count_is_refused(
    kafka_settings: Settings, unique_name: Callable[[str], str]
) -> None:
    kafka = _unique_topics(kafka_settings, unique_name, partitions=2)
    ensure_topics(kafka)

    with pytest.raises(BrokerError, match=r"has 2 partitions but RTAP_KAFKA_PARTITIONS=4"):
        ensure_topics(kafka.model_copy(update={"partitions": 4}))
    with pytest.raises(BrokerError, match=r"has 2 partitions but RTAP_KAFKA_PARTITIONS=1"):
        ensure_topics(kafka.model_copy(update={"partitions": 1}))


def test_dead_letter_topic_with_fewer_partitions_is_refused(
    kafka_settings: Settings, unique_name: Callable[[str], str]
) -> None:
    kafka = _unique_topics(kafka_settings, unique_name, partitions=3)
    admin = AdminClient(dict(kafka.client_config()))
    created = admin.create_topics([NewTopic(kafka.dlq_topic, num_partitions=1, replication_factor=1)])
    created[kafka.dlq_topic].result(30)

    with pytest.raises(BrokerError, match=rf"topic {kafka.dlq_topic} has 1 partitions, fewer than"):
        ensure_topics(kafka)


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
