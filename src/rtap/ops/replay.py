"""``rtap dlq replay``: give dead letters a second chance after the contract (or the producer) was fixed.

Reads the DLQ topic with a consumer group, re-validates each record against the current contract, and
re-publishes the ones that now pass to the input topic with their original key. The group's offsets are
committed only after the re-published records are acknowledged, so each dead letter is replayed at most
once per group and none is lost. Records that still fail stay where they are and are counted by reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from rtap.contract import validate_event
from rtap.errors import BrokerError, ContractError
from rtap.settings import KafkaSettings
from rtap.stream.kafka import produce_waiting

REPLAY_GROUP = "rtap-dlq-replay"


@dataclass
class ReplayReport:
    read: int = 0
    replayed: int = 0
    still_invalid: Counter[str] = field(default_factory=Counter)


def _resume_at(committed: TopicPartition) -> TopicPartition:
    """Where the group goes on in a partition: its committed offset, or the beginning if it has none."""
    offset = committed.offset if committed.offset >= 0 else OFFSET_BEGINNING
    return TopicPartition(committed.topic, committed.partition, offset)


def replay_dead_letters(settings: KafkaSettings, *, dry_run: bool = False, idle_timeout_s: float = 5.0) -> ReplayReport:
    """Replay every dead letter not yet replayed by this group; returns what happened."""
    consumer = Consumer(
        {
            **settings.client_config(),
            "group.id": REPLAY_GROUP,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    producer = Producer({**settings.client_config(), "enable.idempotence": True, "acks": "all"})
    report = ReplayReport()
    failures: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, _message: object) -> None:
        if error is not None:
            failures.append(error)

    try:
        metadata = consumer.list_topics(settings.dlq_topic, timeout=10)
        partitions = metadata.topics[settings.dlq_topic].partitions
        # Start each partition at the group's committed offset, set in the assignment itself: a seek() right
        # after assign() races the fetcher's start and could be overridden, replaying everything again.
        committed = consumer.committed([TopicPartition(settings.dlq_topic, p) for p in partitions], timeout=10)
        consumer.assign([_resume_at(tp) for tp in committed])
        while (message := consumer.poll(idle_timeout_s)) is not None:
            if message.error():
                raise BrokerError(f"reading {settings.dlq_topic} failed: {message.error()}")
            report.read += 1
            try:
                validate_event(message.value() or b"")
            except ContractError as exc:
                report.still_invalid[exc.reason if exc.field is None else f"{exc.field}: {exc.reason}"] += 1
                continue
            report.replayed += 1
            if not dry_run:
                produce_waiting(
                    producer, settings.topic, key=message.key(), value=message.value(), on_delivery=on_delivery
                )
                producer.poll(0)
        if not dry_run:
            if producer.flush(30) or failures:
                raise BrokerError(f"re-publishing dead letters failed: {failures[0] if failures else 'timeout'}")
            if report.read:
                consumer.commit(asynchronous=False)
    except KafkaException as exc:
        raise BrokerError(f"dead-letter replay failed: {exc}") from exc
    finally:
        consumer.close()
    return report
