"""The collector's producer settings: every value the settings accept, librdkafka accepts too (one it would refuse
is refused by the settings, in one line naming the variable, before any collector process starts)."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer
from pydantic import ValidationError

from rtap.collect.sinks.kafka import producer_config
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
