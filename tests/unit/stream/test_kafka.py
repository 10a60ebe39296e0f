"""The dead-letter publisher's failure path, against librdkafka's own queue (no broker): a failed delivery fails
the batch and leaves a new producer for the batch that runs again (the old one may know no broker any more)."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest
from confluent_kafka import KafkaError

from rtap.errors import BrokerError
from rtap.settings import KafkaSettings
from rtap.stream.kafka import KafkaDeadLetterPublisher


def _dead_letters(count: int) -> pa.Table:
    return pa.table(
        {
            "raw_key": [b"key"] * count,
            "raw": [b"not json"] * count,
            "raw_size": [8] * count,
            "error": ["invalid JSON"] * count,
            "kafka_topic": ["clickstream.events"] * count,
            "kafka_partition": [0] * count,
            "kafka_offset": list(range(count)),
            "kafka_timestamp": [datetime(2026, 12, 6, tzinfo=UTC)] * count,
        }
    )


def test_a_failed_delivery_fails_the_batch_and_leaves_a_new_producer_with_nothing_to_fail_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("rtap.stream.kafka.DLQ_FLUSH_TIMEOUT_S", 0.5)
    publisher = KafkaDeadLetterPublisher(KafkaSettings(_env_file=None, bootstrap_servers="127.0.0.1:1"))  # type: ignore[call-arg]
    reports: list[int | None] = []
    on_delivery = publisher._on_delivery

    def _seen(error: KafkaError | None, message: object) -> None:
        reports.append(None if error is None else error.code())
        on_delivery(error, message)

    monkeypatch.setattr(publisher, "_on_delivery", _seen)
    try:
        publisher.publish(_dead_letters(3))
        old = publisher._producer

        with pytest.raises(BrokerError, match="3 undelivered"):
            publisher.delivered()

        assert publisher._producer is not old
        # Purged, each record reported so: the old client can never deliver them after the batch runs again and
        # publishes its dead letters again. (Not ``len(old) == 0``: that also counts the client's own error events,
        # such as a failed reconnect, which arrive on their own clock.)
        assert reports == [KafkaError._PURGE_QUEUE] * 3
        publisher.delivered()  # the purge's reports are no failure of the batch that runs again
    finally:
        publisher.close()
