"""rtap's topics, created on purpose and checked: the input topics and the dead-letter topic.

The input topic's partition count is part of the ground truth: the generator predicts each record's
partition as ``murmur2(key) % settings.kafka.partitions`` (what Kafka's default partitioner does), so a
topic with another count is an error here rather than a silent mismatch later. Kafka never shrinks a
topic, and growing one moves keys between partitions, so rtap does neither by itself.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._metadata import ClusterMetadata
from confluent_kafka.cimpl import NewTopic

from rtap.errors import BrokerError
from rtap.settings import KafkaSettings

ADMIN_TIMEOUT_S = 30.0
_MS_PER_HOUR = 3_600_000


def _admin(settings: KafkaSettings) -> AdminClient:
    # librdkafka would print every failed connection attempt (many per second) to stderr; an admin call
    # that fails raises one BrokerError with the reason instead, so only critical logs are kept.
    config: dict[str, Any] = {**settings.client_config(), "log_level": 2}
    return AdminClient(config)


def _metadata(settings: KafkaSettings, timeout_s: float, admin: AdminClient | None = None) -> ClusterMetadata:
    try:
        return (admin or _admin(settings)).list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise BrokerError(
            f"Kafka at {settings.bootstrap_servers} did not answer within {timeout_s:.0f}s "
            f"({_describe(exc)}); is it running? (`rtap kafka start`)"
        ) from exc


def _describe(exc: KafkaException) -> str:
    error = exc.args[0] if exc.args else None
    return error.str() if isinstance(error, KafkaError) else str(exc)


def list_topics(settings: KafkaSettings, timeout_s: float = ADMIN_TIMEOUT_S) -> tuple[str, ...]:
    """The cluster's topics, sorted, without Kafka's internal ones (``__consumer_offsets``...)."""
    metadata = _metadata(settings, timeout_s)
    return tuple(sorted(name for name in metadata.topics if not name.startswith("__")))


def cluster_ready(settings: KafkaSettings, timeout_s: float = ADMIN_TIMEOUT_S) -> bool:
    """Whether a broker has registered and every partition has a leader (a restarted node reloads its
    partitions after it starts answering metadata requests; until then clients get NOT_LEADER errors)."""
    metadata = _metadata(settings, timeout_s)
    if not metadata.brokers:
        return False
    return all(
        topic.error is None and all(p.error is None and p.leader >= 0 for p in topic.partitions.values())
        for topic in metadata.topics.values()
    )


def topic_partitions(settings: KafkaSettings, topic: str, timeout_s: float = ADMIN_TIMEOUT_S) -> int | None:
    """How many partitions ``topic`` has, or None if it does not exist."""
    found = _metadata(settings, timeout_s).topics.get(topic)
    return None if found is None or found.error is not None else len(found.partitions)


def ensure_topics(settings: KafkaSettings, timeout_s: float = ADMIN_TIMEOUT_S) -> list[str]:
    """Create the input topics (contract v1 and the source topics) and the dead-letter topic if they are
    missing; returns the names it created.

    Idempotent: existing topics are checked, not changed. Raises BrokerError if the contract-v1 topic exists
    with another partition count, the dead-letter topic with fewer, or Kafka refuses a creation (for
    example a replication factor larger than the cluster). A source topic that exists is used as it is,
    whatever its partition count (a team's own topic, created before rtap).
    """
    admin = _admin(settings)
    wanted = {name: settings.partitions for name in (*settings.input_topics, settings.dlq_topic)}
    existing = _metadata(settings, timeout_s, admin).topics
    missing = []
    for name in wanted:
        found = existing.get(name)
        if found is None or found.error is not None:
            missing.append(name)
        else:
            _check_partitions(settings, name, len(found.partitions))
    if not missing:
        return []
    config = {
        "min.insync.replicas": str(settings.min_insync_replicas),
        "retention.ms": str(settings.retention_hours * _MS_PER_HOUR),
    }
    new_topics = [
        NewTopic(name, num_partitions=wanted[name], replication_factor=settings.replication_factor, config=config)
        for name in missing
    ]
    created = []
    for name, future in admin.create_topics(new_topics, request_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            if _code(exc) != KafkaError.TOPIC_ALREADY_EXISTS:  # created concurrently: checked below
                raise BrokerError(f"creating Kafka topic {name} failed: {_describe(exc)}") from exc
            raced = topic_partitions(settings, name, timeout_s)
            if raced is not None:
                _check_partitions(settings, name, raced)
        else:
            created.append(name)
    return created


def _code(exc: KafkaException) -> int | None:
    error = exc.args[0] if exc.args else None
    return error.code() if isinstance(error, KafkaError) else None


def _check_partitions(settings: KafkaSettings, name: str, partitions: int) -> None:
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
