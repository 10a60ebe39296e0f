"""A client's broker watch: whether librdkafka's statistics name a broker of the cluster, and when it is lost."""

from __future__ import annotations

import time

import orjson
import pytest

from rtap.kafka_clients import LOST_REPORTS, BrokerWatch, knows_a_broker
from tests.support.kafka_statistics import statistics


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
    assert knows_a_broker(orjson.loads(statistics(*sources))) is known


def test_a_watch_is_lost_after_reports_in_a_row_that_name_no_broker_and_found_again_by_one_that_does() -> None:
    watch = BrokerWatch()
    for _ in range(LOST_REPORTS - 1):
        watch(statistics("internal"))
    assert not watch.lost  # one report can fall between a broker's removal and its successor's
    watch(statistics("learned"))
    for _ in range(LOST_REPORTS - 1):
        watch(statistics("internal"))
    assert not watch.lost  # in a row, not in all
    watch(statistics("internal"))
    assert watch.lost
    watch(statistics("configured"))
    assert not watch.lost


def test_librdkafka_reports_to_the_watch_its_config_names_in_the_format_it_reads() -> None:
    """A real client's reports: before it ever reached a broker it knows its bootstrap one (``configured``)."""
    from confluent_kafka import Producer

    reports: list[str] = []

    class Recording(BrokerWatch):
        def __call__(self, statistics: str) -> None:
            reports.append(statistics)
            super().__call__(statistics)

    watch = Recording()
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", **watch.config(), "statistics.interval.ms": 100})
    deadline = time.monotonic() + 10
    while len(reports) < LOST_REPORTS and time.monotonic() < deadline:
        producer.poll(0.05)
    assert len(reports) >= LOST_REPORTS, "librdkafka sent no statistics within 10 s"
    assert watch.report == orjson.loads(reports[-1])  # the last report, kept for its owner
    assert knows_a_broker(watch.report)
    assert not watch.lost
