"""Kafka's admin API, the one place rtap builds admin clients: cluster metadata and partition offsets.

Used by every layer that asks the cluster a question: the topic set-up (``rtap.ingest.topics``), the stream
job's lag probe and retention check (``rtap.stream``), the local broker's and cluster's readiness checks
(``rtap.runtime``). Every failure is one :class:`~rtap.errors.BrokerError` naming the broker and the reason.

A cluster that refuses the client (a wrong password, a certificate the client does not trust or the broker does
not accept) looks to librdkafka like a broker that is down: it retries for ever and reports why only to an error
callback, which it serves on ``poll``. :func:`connect` polls between short metadata attempts, so that such a
refusal ends the first contact at once as :class:`~rtap.errors.BrokerRefusedError` with librdkafka's reason,
instead of a time-out that says nothing. Long-lived admin clients (the lag probe's) have no callback: its
errors would queue inside librdkafka until polled.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from typing import Any, Literal

from confluent_kafka import IsolationLevel, KafkaError, KafkaException, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]  # not in the stubs
from confluent_kafka.admin._metadata import ClusterMetadata

from rtap.errors import BrokerError, BrokerRefusedError
from rtap.settings import KafkaSettings

ADMIN_TIMEOUT_S = 30.0
# One metadata attempt of connect(): between two, the error callback is served.
_ATTEMPT_S = 1.0
# librdkafka's "proto://host:port/id: " before, and " (after 326ms in state AUTH_REQ)" after, its reasons.
_BROKER_PREFIX = re.compile(r"^\S+://\S+?/\S+: ")
_STATE_SUFFIX = re.compile(r" \(after \d+ms in state \w+\)$")
# A TLS alert the broker sent: it refused the client's certificate (none, or one its CA did not sign).
_TLS_ALERT = re.compile(r"alert (bad certificate|certificate required|unknown ca|certificate unknown)", re.I)


class _Refusals:
    """librdkafka's ``error_cb``: keeps the first error that says the cluster refused the client, and the last
    other one (two slots, however many reconnects)."""

    def __init__(self) -> None:
        self.refusal: KafkaError | None = None
        self.last: KafkaError | None = None

    def __call__(self, error: KafkaError) -> None:
        code = error.code()
        if self.refusal is None and (
            code in (KafkaError._AUTHENTICATION, KafkaError._SSL)
            or (code == KafkaError._TRANSPORT and _TLS_ALERT.search(error.str()))
        ):
            self.refusal = error
        elif code != KafkaError._ALL_BROKERS_DOWN:
            self.last = error


def _reason(error: KafkaError) -> str:
    return _STATE_SUFFIX.sub("", _BROKER_PREFIX.sub("", error.str()))


def _refused(settings: KafkaSettings, error: KafkaError) -> BrokerRefusedError:
    """The refusal in one line, with the settings that decide it."""
    where = f"Kafka at {settings.bootstrap_servers}"
    reason = _reason(error)
    if error.code() == KafkaError._AUTHENTICATION:
        return BrokerRefusedError(
            f"{where} refused the login of {settings.sasl_username or 'rtap'} ({reason}): check "
            "RTAP_KAFKA_SASL_MECHANISM, RTAP_KAFKA_SASL_USERNAME and RTAP_KAFKA_SASL_PASSWORD"
        )
    if error.code() == KafkaError._SSL:
        reason = reason.split(", verify that ssl.ca.location")[0]  # librdkafka's own hint names its own setting
        return BrokerRefusedError(
            f"the TLS handshake with {where} failed ({reason}): RTAP_KAFKA_SSL_CA_FILE must be the CA that signed "
            "the brokers' certificates (empty: the system's CAs)"
        )
    return BrokerRefusedError(
        f"{where} refused rtap's TLS client certificate ({reason}): set RTAP_KAFKA_SSL_CERTIFICATE_FILE and "
        "RTAP_KAFKA_SSL_KEY_FILE to a certificate signed by a CA the brokers trust"
    )


def admin_client(settings: KafkaSettings) -> AdminClient:
    """An admin client on the configured cluster. librdkafka would print every failed connection attempt
    (many per second) to stderr; a failed call raises one BrokerError instead, so only critical logs stay."""
    config: dict[str, Any] = {**settings.client_config(), "log_level": 2}
    return AdminClient(config)


def describe_error(exc: KafkaException) -> str:
    """The Kafka error inside ``exc`` in one line."""
    error = exc.args[0] if exc.args else None
    return error.str() if isinstance(error, KafkaError) else str(exc)


def _no_answer(settings: KafkaSettings, timeout_s: float, exc: KafkaException, last: KafkaError | None) -> BrokerError:
    detail = _reason(last) if last is not None else describe_error(exc)
    if settings.names_local_broker:
        hint = "is it running? (`rtap kafka start`)"
    else:
        hint = "is it running, and reachable from this machine?"
    where = f"Kafka at {settings.bootstrap_servers}"
    return BrokerError(f"{where} did not answer within {timeout_s:.0f}s ({detail}); {hint}")


def connect(settings: KafkaSettings, timeout_s: float = ADMIN_TIMEOUT_S) -> tuple[AdminClient, ClusterMetadata]:
    """A new admin client that has read the cluster's metadata, and that metadata: the first contact.

    Raises BrokerRefusedError as soon as the cluster refuses the client's login or certificate, BrokerError
    when no broker answered within ``timeout_s``. The client is for short use (it keeps an error callback).
    """
    refusals = _Refusals()
    config: dict[str, Any] = {**settings.client_config(), "log_level": 2, "error_cb": refusals}
    admin = AdminClient(config)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return admin, admin.list_topics(timeout=max(0.1, min(_ATTEMPT_S, deadline - time.monotonic())))
        except KafkaException as exc:
            admin.poll(0)  # serves the error callback
            if refusals.refusal is not None:
                raise _refused(settings, refusals.refusal) from exc
            if time.monotonic() >= deadline:
                raise _no_answer(settings, timeout_s, exc, refusals.last) from exc


def cluster_metadata(
    settings: KafkaSettings, timeout_s: float = ADMIN_TIMEOUT_S, admin: AdminClient | None = None
) -> ClusterMetadata:
    """Brokers, topics and partitions as the cluster reports them (through ``admin``, else a new client)."""
    if admin is None:
        return connect(settings, timeout_s)[1]
    try:
        return admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise _no_answer(settings, timeout_s, exc, None) from exc


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
    admin, metadata = connect(settings, timeout_s)
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
    which: Literal["earliest", "latest", "stable"],
    *,
    timeout_s: float = 10.0,
    missing_ok: bool = False,
    metadata: ClusterMetadata | None = None,
) -> dict[tuple[str, int], int]:
    """Per (topic, partition): the log start (``earliest``, after retention), the log end (``latest``), or the
    last stable offset (``stable``: the log end short of the first record of a transaction still open, which is
    where a ``read_committed`` consumer such as the stream job can read up to).

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
        isolation = IsolationLevel.READ_COMMITTED if which == "stable" else IsolationLevel.READ_UNCOMMITTED
        futures = admin.list_offsets(request, isolation_level=isolation, request_timeout=timeout_s)
        return {(tp.topic, tp.partition): future.result().offset for tp, future in futures.items()}
    except KafkaException as exc:
        raise BrokerError(f"cannot read the {which} offsets of {', '.join(names)}: {describe_error(exc)}") from exc


# Kafka's "no id" (a broker before topic ids, KIP-516), as confluent-kafka prints a Uuid: base64 of 16 zero bytes.
_NO_TOPIC_ID = "AAAAAAAAAAAAAAAAAAAAAA"


def topic_ids(admin: AdminClient, topics: Iterable[str], *, timeout_s: float = 10.0) -> dict[str, str]:
    """Per topic, the id Kafka gave it when it was created (base64, as Kafka's tools print it): a topic deleted and
    created again under its name gets a new one. '' when the broker has no topic ids."""
    names = tuple(topics)
    try:
        futures = admin.describe_topics(TopicCollection(list(names)), request_timeout=timeout_s)
        ids = {name: str(future.result().topic_id) for name, future in futures.items()}
    except KafkaException as exc:
        raise BrokerError(f"cannot describe {', '.join(names)}: {describe_error(exc)}") from exc
    return {name: "" if found == _NO_TOPIC_ID else found for name, found in ids.items()}
