"""What rtap's librdkafka producers share: producing through a full local queue, and noticing that a client knows
no broker any more.

librdkafka 2.16.0 (the one confluent-kafka 2.16.1 and 2.16.2 bundle) drops every broker a metadata answer leaves
out, and a lone broker in the middle of a clean shutdown can answer with none. The client then has nothing to
connect to and never bootstraps again, although the broker is back seconds later: its re-bootstrap timer starts
only when it sends a metadata request, which it cannot (docs/operations.md, "One broker, stopped cleanly"). The
only way back is a new client.

A :class:`BrokerWatch` is a client's ``stats_cb``: librdkafka reports, every :data:`STATS_EVERY_MS` (a few kB of
JSON, served by ``poll``/``flush`` like any callback), the brokers the client knows and where each came from. After
:data:`LOST_REPORTS` reports in a row naming none of the cluster's, :attr:`BrokerWatch.lost` is true and the owner
replaces the client: the collector's sink (``rtap.collect.sinks.kafka``) and ``rtap produce``
(``rtap.ingest.producer``), each deciding what becomes of the records the old client holds (they are its delivery
guarantees). Only a client that is polled all the time may have a watch: unserved reports pile up in its queue.
The stream job's clients are served only while a batch runs, so they are renewed on failure instead: the
dead-letter publisher after a failed delivery (``rtap.stream.kafka``), the lag probe's admin client with each
restart of the query.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:  # confluent_kafka is imported by the clients' own modules, when they make one
    from confluent_kafka import KafkaError, Producer

# How often librdkafka reports the brokers a client knows, and after how many reports in a row that name none the
# client is given up. Two reports: one can be taken in the instant between a broker's removal and its successor's.
STATS_EVERY_MS = 1_000
LOST_REPORTS = 2
# Where a broker a client knows came from, in librdkafka's statistics: its bootstrap list or a metadata answer.
# The others ("internal", "logical") are not connections to a cluster.
_CLUSTER_SOURCES = frozenset({"configured", "learned"})


def knows_a_broker(report: Mapping[str, Any]) -> bool:
    """Whether a librdkafka statistics report (``stats_cb``'s JSON, parsed) names a broker of the cluster."""
    brokers = report.get("brokers") or {}
    return any(broker.get("source") in _CLUSTER_SOURCES for broker in brokers.values())


class BrokerWatch:
    """One client's ``stats_cb``: :attr:`lost` once :data:`LOST_REPORTS` reports in a row named no broker.

    One watch per client: a replaced client's late reports then cannot speak for its successor. It keeps the last
    report (:attr:`report`), which says what the client had done when it was lost (``rtap.ingest.producer``).
    """

    __slots__ = ("_without", "report")

    def __init__(self) -> None:
        self._without = 0  # reports in a row that named no broker
        self.report: dict[str, Any] = {}

    def __call__(self, statistics: str) -> None:
        self.report = orjson.loads(statistics)
        self._without = 0 if knows_a_broker(self.report) else self._without + 1

    @property
    def lost(self) -> bool:
        return self._without >= LOST_REPORTS

    def config(self) -> dict[str, Any]:
        """The librdkafka properties that make a client report to this watch."""
        return {"statistics.interval.ms": STATS_EVERY_MS, "stats_cb": self}


def produce_waiting(
    producer: Producer,
    topic: str,
    *,
    key: bytes | None,
    value: bytes | None,
    on_delivery: Callable[[KafkaError | None, Any], None] | None = None,
    headers: list[tuple[str, str | bytes | None]] | None = None,
) -> None:
    """``producer.produce`` that waits while librdkafka's local queue is full instead of failing.

    A full queue (``BufferError``) means the broker is slower than we produce, not that anything failed:
    serving delivery callbacks for a moment frees room. Real failures still raise (``KafkaException``) or
    reach ``on_delivery`` (without one, the producer's configured callback).
    """
    while True:
        try:
            producer.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
            return
        except BufferError:
            producer.poll(0.1)
