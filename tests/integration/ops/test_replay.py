"""``rtap dlq replay`` and the DLQ producer's back-pressure, against the real broker."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from rtap.ingest.topics import ensure_topics
from rtap.ops.replay import replay_dead_letters
from rtap.settings import Settings
from rtap.stream.kafka import produce_waiting


@pytest.fixture
def settings(kafka_settings: Settings, unique_name: Callable[[str], str]) -> Settings:
    kafka = kafka_settings.kafka.model_copy(update={"topic": unique_name("events"), "dlq_topic": unique_name("dlq")})
    ensure_topics(kafka)
    return kafka_settings.model_copy(update={"kafka": kafka})


def _event(n: int) -> bytes:
    return orjson.dumps(
        {
            "event_id": str(uuid.UUID(int=n)),
            "event_type": "page_view",
            "event_time": "2026-11-29T10:00:00.000Z",
            "user_id": f"u{n}",
            "session_id": f"s{n}",
            "page_url": "/",
        }
    )


def _read_all(settings: Settings, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    kafka = settings.kafka
    consumer = Consumer({**kafka.client_config(), "group.id": f"rtap-test-{uuid.uuid4()}", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(kafka.partitions)])
        records = []
        while (message := consumer.poll(3.0)) is not None:
            assert message.error() is None, message.error()
            records.append((message.key(), message.value()))
        return records
    finally:
        consumer.close()


def test_produce_waiting_rides_out_a_full_local_queue(settings: Settings) -> None:
    kafka = settings.kafka
    # Room for 5 records: producing 200 without waiting would raise BufferError after the fifth.
    producer = Producer({**kafka.client_config(), "queue.buffering.max.messages": 5, "linger.ms": 50})
    errors: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, _message: Any) -> None:
        if error is not None:
            errors.append(error)

    for n in range(200):
        produce_waiting(producer, kafka.dlq_topic, key=f"k{n}".encode(), value=_event(n), on_delivery=on_delivery)
    assert producer.flush(30) == 0
    assert errors == []
    assert len(_read_all(settings, kafka.dlq_topic)) == 200


def test_replay_republishes_what_now_passes_once(settings: Settings) -> None:
    kafka = settings.kafka
    producer = Producer(kafka.client_config())
    fixed = [(f"s{n}".encode(), _event(n)) for n in range(30)]
    broken = [(b"s-broken", b"{not json"), (b"s-missing", orjson.dumps({"event_type": "page_view"}))]
    for key, value in [*fixed, *broken]:
        producer.produce(kafka.dlq_topic, key=key, value=value)
    assert producer.flush(30) == 0

    dry = replay_dead_letters(kafka, dry_run=True, idle_timeout_s=2)
    assert (dry.read, dry.replayed) == (32, 30)
    assert _read_all(settings, kafka.topic) == []  # a dry run publishes nothing and commits nothing

    report = replay_dead_letters(kafka, idle_timeout_s=2)
    assert (report.read, report.replayed, sum(report.still_invalid.values())) == (32, 30, 2)
    assert sorted(_read_all(settings, kafka.topic)) == sorted(fixed)  # original keys and bytes

    again = replay_dead_letters(kafka, idle_timeout_s=2)
    assert (again.read, again.replayed) == (0, 0)  # the group's offsets were committed after delivery
