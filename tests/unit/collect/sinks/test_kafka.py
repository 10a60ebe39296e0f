"""The collector's producer settings: every value the settings accept, librdkafka accepts too (one it would refuse
is refused by the settings, in one line naming the variable, before any collector process starts). A producer that
knows no broker any more is replaced (librdkafka 2.16 can lose them all during a lone broker's shutdown)."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from confluent_kafka import KafkaError, Producer
from pydantic import ValidationError

from rtap.collect.sinks.kafka import KafkaSink, knows_a_broker, producer_config
from rtap.metrics.collector import CollectorMetrics
from rtap.settings import CollectorSettings, KafkaSettings

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


def _statistics(*sources: str) -> bytes:
    """A librdkafka statistics report (the fields knows_a_broker reads) naming brokers of these sources."""
    brokers = {f"b{n}": {"name": f"b{n}", "nodeid": n, "source": source} for n, source in enumerate(sources)}
    return orjson.dumps({"name": "rtap-collector#producer-1", "type": "producer", "brokers": brokers})


@pytest.mark.parametrize(
    ("sources", "known"),
    [
        (("configured",), True),  # before the first metadata answer: the bootstrap list
        (("learned", "internal"), True),
        (("internal",), False),  # every broker dropped: only librdkafka's own queue for leaderless partitions
        (("internal", "logical"), False),
        ((), False),
    ],
)
def test_a_statistics_report_tells_whether_the_client_knows_a_broker(sources: tuple[str, ...], known: bool) -> None:
    assert knows_a_broker(_statistics(*sources)) is known


def test_a_producer_that_knows_no_broker_is_replaced_and_its_records_are_reported_failed() -> None:
    """Two reports in a row naming no broker: a new producer takes over, the old one's record is purged (its request
    would be answered 503), and the old producer is let go once that is reported."""

    async def scenario() -> tuple[int, KafkaError | None, int]:
        kafka = KafkaSettings(_env_file=None, bootstrap_servers="127.0.0.1:1")  # type: ignore[call-arg]
        sink = KafkaSink(kafka, CollectorSettings(_env_file=None), CollectorMetrics())  # type: ignore[call-arg]
        sink._config["statistics.interval.ms"] = 600_000  # only the reports below: librdkafka's would name 127.0.0.1:1
        await sink.start()
        try:
            old = sink._producer
            assert old is not None
            outcome: list[KafkaError | None] = []
            old.produce(kafka.browser_topic, b"{}", b"key", on_delivery=lambda error, _message: outcome.append(error))
            for _ in range(2):
                sink._on_stats(_statistics("internal").decode())
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
