"""``rtap produce`` replacing a producer that knows no broker any more, against a broker of this module's own.

librdkafka 2.16 can drop every broker it knows while a lone broker shuts down cleanly, and then never bootstraps
again (``rtap.kafka_clients``). That state cannot be brought about on demand (asking for metadata during the
shutdown brought it about in two of nine restarts), so the test tells the run's first producer that it is lost,
while the broker is down, once two of its statistics reports came after the broker's stop: the state in which
librdkafka would be lost. The run then hands the records its producer never had stored to a new one, and once the
broker is back Kafka holds every record of the run, once. A request the stop cut off after the broker stored it
(some runs have one, most do not) is what the read-back is for; the tests below the first bring that about with
records Kafka really holds.
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
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition

from rtap.generate import GroundTruth
from rtap.ingest.producer import ProduceReport, PurgedRecord, _RunProducer, produce_run, producer_config
from rtap.ingest.topics import ensure_topics
from rtap.kafka_admin import admin_client
from rtap.kafka_clients import LOST_REPORTS, BrokerWatch
from rtap.runtime.broker import LocalKafka
from rtap.settings import ProducerSettings, Settings
from tests.support.pipeline import local_broker_settings
from tests.support.producer import producer_counter, queued

# Open loop: records keep coming while the broker is down, so the lost producer holds some when it is replaced.
RATE = 2_000.0
BEFORE_S, DOWN_S, AFTER_S = 2.0, 3.0, 3.0
HANDED_OVER = re.compile(r"sends again the (\d+) records Kafka does not hold \((\d+) it holds already, 0 failed\)")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalKafka]:
    with LocalKafka(local_broker_settings(tmp_path / "kafka")) as kafka:
        yield kafka


class _ToldLost(BrokerWatch):
    """The run's first producer's watch reports it lost once the test says so and two reports came after that (as
    librdkafka's would: taken when no broker could acknowledge anything any more); the others watch as they would."""

    told: ClassVar[threading.Event]
    watches: ClassVar[list[BrokerWatch]]

    def __init__(self) -> None:
        super().__init__()
        self.reports_since_told = 0
        self.watches.append(self)

    def __call__(self, statistics: str) -> None:
        super().__call__(statistics)
        self.reports_since_told += self.told.is_set()

    @property
    def lost(self) -> bool:
        return (self is self.watches[0] and self.reports_since_told >= LOST_REPORTS) or super().lost


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
    ((handed_over, held_already),) = ((int(m[1]), int(m[2])) for m in map(HANDED_OVER.search, caplog.messages) if m)
    assert handed_over > 0, "the lost producer held no record: the test would not show them sent again"
    print(f"sent again: {handed_over}, held already: {held_already}")  # -s shows which case a run met
    assert (report.failed, report.first_error) == (0, None)
    truth = GroundTruth.from_json(report.truth_path.read_bytes())
    assert truth.totals().produced == report.produced
    records = _all_records(settings, report.produced)
    assert records.total() == report.produced  # none lost, none stored twice


def _kafka_holding(broker: LocalKafka, records: list[tuple[bytes, bytes]]) -> tuple[Settings, dict[int, int]]:
    """The broker's settings once partition 0 holds ``records`` (key, value), and where they begin (each
    partition's log end before them): what an idempotent producer had stored, acknowledged or not."""
    from confluent_kafka import Producer

    from rtap.ingest.producer import end_offsets

    settings = broker.settings.model_copy(update={"kafka": broker.kafka_settings()})
    ensure_topics(settings.kafka)
    starts = end_offsets(settings.kafka, 15.0, threading.Event())
    producer = Producer({**settings.kafka.client_config(), "enable.idempotence": True})
    for key, value in records:
        producer.produce(settings.kafka.topic, value, key, partition=0)
    assert producer.flush(30) == 0
    return settings, starts


def _run_from(settings: Settings, starts: dict[int, int]) -> _RunProducer:
    kafka = settings.kafka
    return _RunProducer(kafka, producer_config(kafka, ProducerSettings()), starts=starts, stop=threading.Event())


def _purged(*values: bytes, partition: int = 0) -> list[PurgedRecord]:
    return [PurgedRecord(value, b"key", partition) for value in values]


def test_the_purged_records_kafka_holds_are_found_by_count_and_read_back(broker: LocalKafka) -> None:
    """Six acknowledged, then a request cut off after the broker stored it (three), then two never sent."""
    stored = [(b"key", f"record-{n}".encode()) for n in range(9)]
    settings, starts = _kafka_holding(broker, stored)
    run = _run_from(settings, starts)

    counts, _ = run._stored(_purged(b"record-6", b"record-7", b"record-8", b"new-1", b"new-2"), {0: 6}, set())

    assert counts == {0: 3}
    assert run._starts == {**starts, 0: starts[0] + 9}  # the new producer's records begin after them
    # The read-back committed nothing: its group has no offsets (with auto-commit on it had partition 0's).
    admin = admin_client(settings.kafka)  # kept: a future outlives no client
    group = ConsumerGroupTopicPartitions("rtap-produce-read-back")
    (offsets,) = admin.list_consumer_group_offsets([group], request_timeout=15).values()
    assert offsets.result(timeout=30).topic_partitions == []


def test_a_copy_of_an_acknowledged_record_is_told_from_the_stored_one_by_the_count(broker: LocalKafka) -> None:
    """The generator re-sends records byte for byte: Kafka holds A twice, and the purged records begin with A.
    Whether that A is one of the two depends only on how many the producer had acknowledged."""
    settings, starts = _kafka_holding(broker, [(b"key", b"A"), (b"key", b"A")])

    both_acknowledged, _ = _run_from(settings, starts)._stored(_purged(b"A", b"B"), {0: 2}, set())
    one_acknowledged, _ = _run_from(settings, starts)._stored(_purged(b"A", b"B"), {0: 1}, set())

    assert both_acknowledged == {0: 0}  # the purged A is a third copy, never stored: it is sent again
    assert one_acknowledged == {0: 1}  # the second A stored is the purged one: it is not


def test_a_partition_another_producer_wrote_to_cannot_be_told(broker: LocalKafka) -> None:
    settings, starts = _kafka_holding(broker, [(b"key", b"A"), (b"other producer", b"X")])
    run = _run_from(settings, starts)

    counts, why = run._stored(_purged(b"B", b"C"), {0: 1}, set())  # one more record than acknowledged, not B

    assert counts == {0: None}
    assert "another producer" in why
    failed, _ = _run_from(settings, starts)._stored(_purged(b"B"), {0: 2}, {0})  # a record of it had failed
    assert failed == {0: None}


@pytest.mark.parametrize("other_producer", [False, True])
def test_a_replaced_producers_records_go_to_its_successor_whether_or_not_the_count_can_tell(
    broker: LocalKafka, other_producer: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """The run's producers reach no broker (their records stay queued, with the partition they were given) while
    the read-back reaches this one. Where another producer wrote to the partition since the run's records began,
    whether Kafka holds some of the purged ones cannot be told: they are sent again all the same, and counted."""
    settings, starts = _kafka_holding(broker, [(b"other producer", b"X")] if other_producer else [])
    kafka = settings.kafka
    config = {**producer_config(kafka, ProducerSettings()), "bootstrap.servers": "127.0.0.1:1"}
    run = _RunProducer(kafka, config, starts=starts, stop=threading.Event())
    records = [(b"key", f"record-{n}".encode()) for n in range(3)]
    for key, value in records:
        run.current.produce(kafka.topic, value, key, partition=0)
    unchecked_before = producer_counter("rtap_producer_records_resent_unchecked_total")

    with caplog.at_level(logging.WARNING, logger="rtap.produce"):
        run.replace()

    assert (run.tally.failed, run.tally.first_error) == (0, None)
    assert producer_counter("rtap_producer_records_resent_unchecked_total") - unchecked_before == (
        3 if other_producer else 0
    )
    assert any("could not be told" in message for message in caplog.messages) is other_producer
    assert [(key, value) for value, key in queued(run)] == records  # the successor holds them, in their order
