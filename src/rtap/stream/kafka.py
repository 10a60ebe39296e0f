"""The stream job's own Kafka clients: the dead-letter publisher and the lag probe (driver side).

Spark's Kafka source reads the input topic; these two small confluent-kafka clients do what the source
cannot: publish dead letters to ``clickstream.events.dlq`` and measure how far the job is behind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
from confluent_kafka import KafkaError, KafkaException, Producer

from rtap.errors import BrokerError
from rtap.kafka_admin import admin_client, partition_offsets
from rtap.kafka_clients import produce_waiting
from rtap.settings import KafkaSettings

DLQ_FLUSH_TIMEOUT_S = 30.0
# How long a replaced producer is given to report the records it is purged of (at once, in practice).
DLQ_PURGE_TIMEOUT_S = 5.0


class KafkaDeadLetterPublisher:
    """Publishes invalid records to the DLQ topic: the original key and bytes, the reason in headers.

    The header layout follows Kafka Connect's dead-letter convention, so existing tooling can read it. The key
    and value are at most the record size limit (``rtap.stream.transforms.parse_records`` cuts them; a record
    that large is never valid), so the publish never meets a size limit of librdkafka or the broker whatever
    a producer wrote; ``rtap.source.size`` keeps the value's real size. A replayed micro-batch publishes its
    dead letters again (at-least-once on this topic); consumers that must not see a copy twice key on the
    ``rtap.source.*`` headers. The warehouse table is exactly-once.
    """

    def __init__(self, settings: KafkaSettings) -> None:
        self._topic = settings.dlq_topic
        self._config = {
            **settings.client_config(),
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": "lz4",
        }
        self._producer = Producer(self._config)
        self._errors: list[KafkaError] = []

    def _on_delivery(self, error: KafkaError | None, _message: Any) -> None:
        if error is not None:
            self._errors.append(error)

    def publish(self, rows: pa.Table) -> None:
        """Queue ``rows`` for the topic; :meth:`delivered` waits for them. Apart, so that the broker's
        acknowledgement arrives while the sink writes the warehouse, not before it."""
        for row in rows.select(
            ["raw_key", "raw", "raw_size", "error", "kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp"]
        ).to_pylist():
            timestamp: datetime = row["kafka_timestamp"]
            headers: list[tuple[str, str | bytes | None]] = [
                ("rtap.error", str(row["error"]).encode()),
                ("rtap.source.topic", str(row["kafka_topic"]).encode()),
                ("rtap.source.partition", str(row["kafka_partition"]).encode()),
                ("rtap.source.offset", str(row["kafka_offset"]).encode()),
                ("rtap.source.timestamp", timestamp.isoformat().encode()),
                ("rtap.source.size", str(row["raw_size"]).encode()),
            ]
            try:
                produce_waiting(
                    self._producer,
                    self._topic,
                    key=row["raw_key"],
                    value=row["raw"],
                    headers=headers,
                    on_delivery=self._on_delivery,
                )
            except KafkaException as exc:
                self._renew()
                raise BrokerError(f"dead-letter publish to {self._topic} failed: {exc}") from exc

    def delivered(self) -> None:
        """Wait until the broker has acknowledged every record published so far; raise if any failed."""
        remaining = self._producer.flush(DLQ_FLUSH_TIMEOUT_S)
        if remaining or self._errors:
            errors, self._errors = self._errors, []
            self._renew()
            raise BrokerError(
                f"dead-letter publish to {self._topic} failed: {remaining} undelivered, "
                f"{len(errors)} errors ({errors[0] if errors else 'timeout'})"
            )

    def _renew(self) -> None:
        """A new producer after a failed delivery, for the batch that runs again (it publishes its dead letters
        again). The old one may know no broker any more, which only a new client mends (:mod:`rtap.kafka_clients`):
        its records are purged (the batch's, published again) and it is let go. Not a statistics watch as the
        collector's: the job serves this client only while a batch runs, and the reports of an idle hour would
        pile up unserved."""
        old, self._producer = self._producer, Producer(self._config)
        old.purge()
        old.flush(DLQ_PURGE_TIMEOUT_S)  # serves the purged records' reports, which fail nothing now
        self._errors = []

    def close(self) -> None:
        """Deliver what is queued and release the client (its threads would otherwise outlive the job)."""
        self._producer.flush(DLQ_FLUSH_TIMEOUT_S)
        self._producer.close()


@dataclass(frozen=True)
class PartitionLag:
    """Where the job is in one partition: ``position`` (after the last offset it processed) and the log end."""

    position: int
    end: int

    @property
    def records(self) -> int:
        return max(0, self.end - self.position)


class LagProbe:
    """Records behind the newest offsets of the input topics, given the positions the job has reached."""

    def __init__(self, settings: KafkaSettings, start_positions: Mapping[tuple[str, int], int] | None = None) -> None:
        self._topics = tuple(settings.input_topics)
        self._admin = admin_client(settings)  # one client for the job's life: one per batch costs a connection
        self._positions: dict[tuple[str, int], int] = dict(start_positions or {})

    def __call__(self, end_offsets: Mapping[tuple[str, int], int]) -> dict[tuple[str, int], PartitionLag]:
        """Per (topic, partition), the position reached (with ``end_offsets``, a batch's) and the log end."""
        for key, offset in end_offsets.items():
            self._positions[key] = max(offset, self._positions.get(key, 0))
        latest = self.latest_offsets()
        return {key: PartitionLag(self._positions.get(key, 0), end) for key, end in latest.items()}

    def latest_offsets(self) -> dict[tuple[str, int], int]:
        """The last stable offset of every partition of every input topic (a topic not created yet has none): the
        log end as the job reads it (``read_committed``), so an open transaction's records are not lag yet and the
        commit and abort markers that end transactions are not lag ever."""
        return partition_offsets(self._admin, self._topics, "stable", missing_ok=True)
