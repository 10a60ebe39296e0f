"""``rtap produce`` replacing a producer that knows no broker any more, against a broker of this module's own.

librdkafka 2.16 can drop every broker it knows while a lone broker shuts down cleanly, and then never bootstraps
again (``rtap.kafka_clients``). That state cannot be brought about on demand (asking for metadata during the
shutdown brought it about in two of nine restarts), so the test tells the run's first producer that it is lost,
while the broker is down: the state in which librdkafka would be lost. The run then hands the records its
producer never sent to a new one, and once the broker is back Kafka holds every record of the run, once.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from confluent_kafka import Consumer, TopicPartition

from rtap.generate import GroundTruth
from rtap.ingest.producer import ProduceReport, produce_run
from rtap.ingest.topics import ensure_topics
from rtap.kafka_clients import BrokerWatch
from rtap.runtime.broker import LocalKafka
from rtap.settings import Settings
from tests.support.pipeline import local_broker_settings

# Open loop: records keep coming while the broker is down, so the lost producer holds some when it is replaced.
RATE = 2_000.0
BEFORE_S, DOWN_S, AFTER_S = 2.0, 3.0, 3.0
HANDED_OVER = re.compile(r"sends again the (\d+) records it never sent \(0 failed\)")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalKafka]:
    with LocalKafka(local_broker_settings(tmp_path / "kafka")) as kafka:
        yield kafka


class _ToldLost(BrokerWatch):
    """The run's first producer's watch reports it lost once the test says so; the others watch as they would."""

    told: ClassVar[threading.Event]
    watches: ClassVar[list[BrokerWatch]]

    def __init__(self) -> None:
        super().__init__()
        self.watches.append(self)

    @property
    def lost(self) -> bool:
        return (self is self.watches[0] and self.told.is_set()) or super().lost


def _all_records(settings: Settings, expected: int, timeout_s: float = 60.0) -> Counter[tuple[bytes, bytes]]:
    kafka = settings.kafka
    consumer = Consumer({**kafka.client_config(), "group.id": "rtap-test", "enable.auto.commit": False})
    consumer.assign([TopicPartition(kafka.topic, p, 0) for p in range(kafka.partitions)])
    records: Counter[tuple[bytes, bytes]] = Counter()
    deadline = time.monotonic() + timeout_s
    try:
        while records.total() < expected and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=10_000, timeout=1.0):
                assert message.error() is None, message.error()
                records[(message.key() or b"", message.value() or b"")] += 1
        for message in consumer.consume(num_messages=100, timeout=2.0):  # nothing beyond the run's records
            records[(message.key() or b"", message.value() or b"")] += 1
    finally:
        consumer.close()
    return records


def test_a_producer_lost_while_the_broker_is_down_is_replaced_and_kafka_gets_every_record_once(
    broker: LocalKafka, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_ToldLost, "told", threading.Event(), raising=False)
    monkeypatch.setattr(_ToldLost, "watches", [], raising=False)
    monkeypatch.setattr("rtap.ingest.producer.BrokerWatch", _ToldLost)
    settings = broker.settings.model_copy(update={"kafka": broker.kafka_settings(), "data_dir": tmp_path / "data"})
    ensure_topics(settings.kafka)
    stop = threading.Event()
    reports: list[ProduceReport] = []
    run = threading.Thread(
        target=lambda: reports.append(produce_run(settings, rate=RATE, duration_s=300, seed=5, stop=stop)), daemon=True
    )
    with caplog.at_level(logging.WARNING, logger="rtap.produce"):
        run.start()
        time.sleep(BEFORE_S)
        assert broker.stop()
        _ToldLost.told.set()
        time.sleep(DOWN_S)
        broker.start()
        time.sleep(AFTER_S)
        stop.set()
        run.join(timeout=180)
    assert not run.is_alive(), "the run did not finish after the broker came back"

    (report,) = reports
    assert len(_ToldLost.watches) == 2, "the lost producer was not replaced, or was replaced more than once"
    (handed_over,) = (int(m[1]) for m in map(HANDED_OVER.search, caplog.messages) if m)
    assert handed_over > 0, "the lost producer held no record: the test would not show them sent again"
    assert (report.failed, report.first_error) == (0, None)
    truth = GroundTruth.from_json(report.truth_path.read_bytes())
    assert truth.totals().produced == report.produced
    records = _all_records(settings, report.produced)
    assert records.total() == report.produced  # none lost, none stored twice
