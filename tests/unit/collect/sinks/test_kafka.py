"""The collector's producer settings: every value the settings accept, librdkafka accepts too (one it would refuse
is refused by the settings, in one line naming the variable, before any collector process starts). A producer that
knows no broker any more is replaced (librdkafka 2.16 can lose them all during a lone broker's shutdown)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from confluent_kafka import KafkaError, Producer
from pydantic import ValidationError

from rtap.collect.sinks.kafka import KafkaSink, producer_config
from rtap.kafka_clients import BrokerWatch
from rtap.metrics.collector import CollectorMetrics
from rtap.settings import CollectorSettings, KafkaSettings
from tests.support.kafka_statistics import statistics

BOUNDED = ("queue_max_messages", "queue_max_kbytes", "linger_ms", "ack_timeout_s")


def _upper(name: str) -> float:
    bound = CollectorSettings.model_fields[name].metadata
    return next(rule.le for rule in bound if hasattr(rule, "le"))


def test_librdkafka_takes_every_setting_at_its_upper_bound() -> None:
    collect = CollectorSettings(_env_file=None, **{name: _upper(name) for name in BOUNDED})  # type: ignore[call-arg, arg-type]
    kafka = KafkaSettings(_env_file=None, bootstrap_servers="127.0.0.1:1")  # type: ignore[call-arg]
    producer = Producer(producer_config(kafka, collect))  # raises KafkaException on a value out of its range
    assert producer.flush(0) == 0


@pytest.mark.parametrize("name", BOUNDED)
def test_a_value_librdkafka_would_refuse_is_refused_by_the_settings(name: str) -> None:
    with pytest.raises(ValidationError, match=name):
        CollectorSettings(_env_file=None, **{name: _upper(name) + 1})  # type: ignore[call-arg, arg-type]


class _SilentWatch(BrokerWatch):
    """A watch that librdkafka never reports to (its own reports would name 127.0.0.1:1): only the test's."""

    def config(self) -> dict[str, Any]:
        return {**super().config(), "statistics.interval.ms": 600_000}


def test_a_producer_that_knows_no_broker_is_replaced_and_its_records_are_reported_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two reports in a row naming no broker: a new producer takes over, the old one's record is purged (its request
    would be answered 503), and the old producer is let go once that is reported."""

    monkeypatch.setattr("rtap.collect.sinks.kafka.BrokerWatch", _SilentWatch)

    metrics = CollectorMetrics()

    async def scenario() -> tuple[int, KafkaError | None, int]:
        kafka = KafkaSettings(_env_file=None, bootstrap_servers="127.0.0.1:1")  # type: ignore[call-arg]
        sink = KafkaSink(kafka, CollectorSettings(_env_file=None), metrics)  # type: ignore[call-arg]
        await sink.start()
        try:
            old = sink._producer
            assert old is not None
            outcome: list[KafkaError | None] = []
            old.produce(kafka.browser_topic, b"{}", b"key", on_delivery=lambda error, _message: outcome.append(error))
            for _ in range(2):
                sink._watch(statistics("internal"))
            deadline = time.monotonic() + 10
            while (not outcome or sink._retired) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            replaced = sink._producer is not old
            return int(replaced), outcome[0] if outcome else None, len(sink._retired)
        finally:
            await sink.close()

    replaced, error, retired = asyncio.run(scenario())
    assert replaced == 1
    assert error is not None
    assert error.code() == KafkaError._PURGE_QUEUE
    assert retired == 0
    replacements = [m for m in metrics.collect() if m.name == "rtap_collect_producers_replaced"]
    assert [sample.value for sample in replacements[0].samples if sample.name.endswith("_total")] == [1.0]
