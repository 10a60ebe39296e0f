"""rtap's topics, created on purpose and checked: the input topics and the dead-letter topic.

The input topic's partition count is part of the ground truth: the generator predicts each record's
partition as ``murmur2(key) % settings.kafka.partitions`` (what Kafka's default partitioner does), so a
topic with another count is an error here rather than a silent mismatch later. Kafka never shrinks a
topic, and growing one moves keys between partitions, so rtap does neither by itself.
"""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.cimpl import NewTopic

from rtap.errors import BrokerError
from rtap.kafka_admin import ADMIN_TIMEOUT_S, cluster_metadata, connect, describe_error
from rtap.settings import KafkaSettings

_MS_PER_HOUR = 3_600_000
# An input record's timestamp is the broker's clock when it appended the record, never the producer's: the
# stream job bounds how far an event's own (client) time may be ahead, and how far it may move its
# partition's watermark, by this timestamp (rtap.stream.transforms), so no client clock may set it.
INPUT_TOPIC_CONFIG = {"message.timestamp.type": "LogAppendTime"}


def topic_partitions(settings: KafkaSettings, topic: str, timeout_s: float = ADMIN_TIMEOUT_S) -> int | None:
    """How many partitions ``topic`` has, or None if it does not exist."""
    found = cluster_metadata(settings, timeout_s).topics.get(topic)
    return None if found is None or found.error is not None else len(found.partitions)


def ensure_topics(settings: KafkaSettings, timeout_s: float = ADMIN_TIMEOUT_S) -> list[str]:
    """Create the input topics (contract v1, the collector's and the source topics) and the dead-letter topic
    if they are missing; returns the names it created.

    Input topics get the broker's append time as their records' timestamps (:data:`INPUT_TOPIC_CONFIG`).
    Idempotent: existing topics are checked, not changed. Raises BrokerError if the contract-v1 topic exists
    with another partition count, the dead-letter topic with fewer, or Kafka refuses a creation (for
    example a replication factor larger than the cluster). A source topic that exists is used as it is,
    whatever its partition count (a team's own topic, created before rtap).
    """
    admin, metadata = connect(settings, timeout_s)
    wanted = {name: settings.partitions for name in (*settings.input_topics, settings.dlq_topic)}
    existing = metadata.topics
    missing = []
    for name in wanted:
        found = existing.get(name)
        if found is None or found.error is not None:
            missing.append(name)
        else:
            check_partitions(settings, name, len(found.partitions))
    if not missing:
        return []
    config = {
        "min.insync.replicas": str(settings.min_insync_replicas),
        "retention.ms": str(settings.retention_hours * _MS_PER_HOUR),
    }
    new_topics = [
        NewTopic(
            name,
            num_partitions=wanted[name],
            replication_factor=settings.replication_factor,
            config={**config, **(INPUT_TOPIC_CONFIG if name in settings.input_topics else {})},
        )
        for name in missing
    ]
    created = []
    for name, future in admin.create_topics(new_topics, request_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            if _code(exc) != KafkaError.TOPIC_ALREADY_EXISTS:  # created concurrently: checked below
                raise BrokerError(f"creating Kafka topic {name} failed: {describe_error(exc)}") from exc
            raced = topic_partitions(settings, name, timeout_s)
            if raced is not None:
                check_partitions(settings, name, raced)
        else:
            created.append(name)
    return created


def _code(exc: KafkaException) -> int | None:
    error = exc.args[0] if exc.args else None
    return error.code() if isinstance(error, KafkaError) else None


def check_partitions(settings: KafkaSettings, name: str, partitions: int) -> None:
    """Raise BrokerError if ``name``'s partition count breaks what the pipeline assumes (a source topic may have
    any; the contract-v1 topic exactly ``RTAP_KAFKA_PARTITIONS``; the others at least that many)."""
    expected = settings.partitions
    if name in settings.source_topics:
        return
    if name == settings.topic and partitions != expected:
        raise BrokerError(
            f"topic {name} has {partitions} partitions but RTAP_KAFKA_PARTITIONS={expected}: the generator's "
            f"partition predictions need them equal; set RTAP_KAFKA_PARTITIONS={partitions} or recreate the topic"
        )
    if partitions < expected:
        raise BrokerError(
            f"topic {name} has {partitions} partitions, fewer than RTAP_KAFKA_PARTITIONS={expected}; "
            "set RTAP_KAFKA_PARTITIONS to match or recreate the topic"
        )
