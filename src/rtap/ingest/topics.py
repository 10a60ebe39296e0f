"""rtap's topics, created on purpose and checked: the input topics and the dead-letter topic.

``RTAP_KAFKA_PARTITIONS`` is how many partitions a topic gets when rtap creates it. A topic that already exists
is used with the partitions it has, whatever the setting says: operators grow topics for throughput (Kafka never
shrinks one), a team's topics were sized before rtap, and the stream job reads every partition there is. The
generator predicts each record's partition from the count the contract-v1 topic has when a run starts
(:func:`rtap.ingest.producer.produce_run`); growing the topic during a run moves keys between partitions under it,
so grow it while the generator is stopped.
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

    Input topics get the broker's append time as their records' timestamps (:data:`INPUT_TOPIC_CONFIG`), and
    ``settings.partitions`` partitions. Idempotent: a topic that exists is used as it is (module docstring).
    Raises BrokerError if Kafka refuses a creation (for example a replication factor larger than the cluster).
    """
    admin, metadata = connect(settings, timeout_s)
    wanted = {name: settings.partitions for name in (*settings.input_topics, settings.dlq_topic)}
    existing = metadata.topics
    missing = [name for name in wanted if (found := existing.get(name)) is None or found.error is not None]
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
            if _code(exc) != KafkaError.TOPIC_ALREADY_EXISTS:  # created concurrently: used as it is
                raise BrokerError(f"creating Kafka topic {name} failed: {describe_error(exc)}") from exc
        else:
            created.append(name)
    return created


def _code(exc: KafkaException) -> int | None:
    error = exc.args[0] if exc.args else None
    return error.code() if isinstance(error, KafkaError) else None
