"""Kafka's admin API, the one place rtap builds admin clients: cluster metadata and partition offsets.

Used by every layer that asks the cluster a question: the topic set-up (``rtap.ingest.topics``), the stream
job's lag probe and retention check (``rtap.stream``), the local broker's and cluster's readiness checks
(``rtap.runtime``). Every failure is one :class:`~rtap.errors.BrokerError` naming the broker and the reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]  # not in the stubs
from confluent_kafka.admin._metadata import ClusterMetadata

from rtap.errors import BrokerError
from rtap.settings import KafkaSettings

ADMIN_TIMEOUT_S = 30.0


def admin_client(settings: KafkaSettings) -> AdminClient:
    """An admin client on the configured cluster. librdkafka would print every failed connection attempt
    (many per second) to stderr; a failed call raises one BrokerError instead, so only critical logs stay."""
    config: dict[str, Any] = {**settings.client_config(), "log_level": 2}
    return AdminClient(config)


def describe_error(exc: KafkaException) -> str:
    """The Kafka error inside ``exc`` in one line."""
    error = exc.args[0] if exc.args else None
    return error.str() if isinstance(error, KafkaError) else str(exc)


def cluster_metadata(
    settings: KafkaSettings, timeout_s: float = ADMIN_TIMEOUT_S, admin: AdminClient | None = None
) -> ClusterMetadata:
    """Brokers, topics and partitions as the cluster reports them."""
    try:
        return (admin or admin_client(settings)).list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise BrokerError(
            f"Kafka at {settings.bootstrap_servers} did not answer within {timeout_s:.0f}s "
            f"({describe_error(exc)}); is it running? (`rtap kafka start`)"
        ) from exc


def list_topics(settings: KafkaSettings, timeout_s: float = ADMIN_TIMEOUT_S) -> tuple[str, ...]:
    """The cluster's topics, sorted, without Kafka's internal ones (``__consumer_offsets``...)."""
    metadata = cluster_metadata(settings, timeout_s)
    return tuple(sorted(name for name in metadata.topics if not name.startswith("__")))


def cluster_ready(settings: KafkaSettings, timeout_s: float = ADMIN_TIMEOUT_S) -> bool:
    """Whether a broker has registered and every partition is served by its leader.

    A restarted node answers metadata requests, and even names itself leader, before its replica manager has
    loaded the partitions; until then reads fail with NOT_LEADER_FOR_PARTITION. So the metadata is only the
    first half: the second asks every partition's leader for its log end, which is what a client does first.
    """
    admin = admin_client(settings)
    metadata = cluster_metadata(settings, timeout_s, admin)
    if not metadata.brokers:
        return False
    if not all(
        topic.error is None and all(p.error is None and p.leader >= 0 for p in topic.partitions.values())
        for topic in metadata.topics.values()
    ):
        return False
    try:
        partition_offsets(admin, metadata.topics, "latest", timeout_s=timeout_s, metadata=metadata)
    except BrokerError:
        return False
    return True


def registered_brokers(settings: KafkaSettings, timeout_s: float = 5.0) -> int:
    """How many brokers the cluster's metadata lists (a killed node drops out after its session times out)."""
    return len(cluster_metadata(settings, timeout_s).brokers)


def partition_offsets(
    admin: AdminClient,
    topics: Iterable[str],
    which: Literal["earliest", "latest"],
    *,
    timeout_s: float = 10.0,
    missing_ok: bool = False,
    metadata: ClusterMetadata | None = None,
) -> dict[tuple[str, int], int]:
    """Per (topic, partition): the log start (``earliest``, after retention) or the log end (``latest``).

    A topic that does not exist raises, unless ``missing_ok`` (then it has no partitions to report).
    ``metadata``, when the caller has just read it, saves the round trip that finds the partitions.
    """
    spec = OffsetSpec.earliest() if which == "earliest" else OffsetSpec.latest()  # type: ignore[no-untyped-call]
    names = tuple(topics)
    try:
        metadata = admin.list_topics(timeout=timeout_s) if metadata is None else metadata
        request = {}
        for name in names:
            topic = metadata.topics.get(name)
            if topic is None or topic.error is not None:
                if missing_ok:
                    continue
                raise BrokerError(f"cannot describe {name}: {topic.error if topic else 'no such topic'}")
            request.update({TopicPartition(name, p): spec for p in topic.partitions})
        if not request:
            return {}
        futures = admin.list_offsets(request, request_timeout=timeout_s)
        return {(tp.topic, tp.partition): future.result().offset for tp, future in futures.items()}
    except KafkaException as exc:
        raise BrokerError(f"cannot read the {which} offsets of {', '.join(names)}: {describe_error(exc)}") from exc
