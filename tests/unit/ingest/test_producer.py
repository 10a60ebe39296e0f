"""The producer's pure parts: its librdkafka settings, the open-loop schedule, run ids and truth files, how many of a
replaced producer's purged records Kafka holds; and the replacement of a producer that knows no broker while Kafka
does not answer (librdkafka's own queue, no broker needed; with a broker: tests/integration/ingest)."""

from __future__ import annotations

import itertools
import math
import threading
from pathlib import Path

import orjson
import pytest

from rtap.errors import ConfigError
from rtap.ingest.producer import (
    OpenLoopSchedule,
    PurgedRecord,
    _RunProducer,
    acknowledged,
    new_run_id,
    producer_config,
    split_purged,
    stored_counts,
    validate_run,
    write_truth,
)
from rtap.settings import KafkaSettings, ProducerSettings
from tests.support.kafka_statistics import statistics
from tests.support.producer import producer_counter, queued

# No broker listens there: librdkafka keeps every record in its queue, without a partition.
NOWHERE = "127.0.0.1:1"


def test_producer_config_is_durable_batched_and_java_compatible() -> None:
    config = producer_config(
        KafkaSettings(bootstrap_servers="127.0.0.1:1"),
        ProducerSettings(compression="zstd", linger_ms=7, batch_bytes=12345, queue_max_messages=99),
    )

    assert config["bootstrap.servers"] == "127.0.0.1:1"
    assert config["enable.idempotence"] is True
    assert config["acks"] == "all"
    assert config["partitioner"] == "murmur2_random"
    assert config["compression.type"] == "zstd"
    assert config["linger.ms"] == 7
    assert config["batch.size"] == 12345
    assert config["queue.buffering.max.messages"] == 99
    # Failures still reach the callback; successes are counted by difference after the flush.
    assert config["delivery.report.only.error"] is True
    # Stale metadata after a broker restart must be refreshed well before a record's delivery times out.
    assert config["topic.metadata.refresh.interval.ms"] * 5 <= config["message.timeout.ms"]


def test_producer_config_defaults_to_lz4() -> None:
    assert producer_config(KafkaSettings(), ProducerSettings())["compression.type"] == "lz4"


def test_constant_rate_schedule_is_exactly_i_over_rate() -> None:
    schedule = OpenLoopSchedule(rate=3.0)

    offsets = [schedule.next_offset() for _ in range(300_001)]

    assert offsets[:4] == [0.0, 1 / 3, 2 / 3, 1.0]
    # Multiplying from the start, not adding intervals: no drift after many events.
    assert offsets[-1] == 100_000.0


def test_a_multiplier_scales_the_rate() -> None:
    schedule = OpenLoopSchedule(rate=100.0, multiplier=lambda _wall: 2.0)

    offsets = [schedule.next_offset() for _ in range(1001)]

    assert offsets[-1] == pytest.approx(5.0)  # 1000 events at 200/s


def test_the_multiplier_is_read_at_the_schedules_wall_clock_time() -> None:
    # Half speed for the first 10 s of wall time after 1000.0, then double speed.
    seen: list[float] = []

    def curve(wall: float) -> float:
        seen.append(wall)
        return 0.5 if wall < 1010.0 else 2.0

    schedule = OpenLoopSchedule(rate=10.0, multiplier=curve, wall_start=1000.0, refresh_s=1.0)
    offsets = [schedule.next_offset() for _ in range(100)]

    assert seen[0] == 1000.0
    # 5 events/s for 10 s = 50 events, then 20 events/s.
    assert offsets[50] == pytest.approx(10.0)
    assert offsets[70] == pytest.approx(11.0)
    assert all(b > a for a, b in itertools.pairwise(offsets))


def test_a_non_positive_multiplier_is_refused() -> None:
    with pytest.raises(ConfigError, match="multiplier must be > 0"):
        OpenLoopSchedule(rate=10.0, multiplier=lambda _wall: 0.0)


@pytest.mark.parametrize(
    ("rate", "count", "duration", "message"),
    [
        (-1.0, None, None, "--rate must be >= 0"),
        (math.nan, None, None, "--rate must be >= 0"),
        (10.0, 0, None, "--count must be >= 1"),
        (10.0, None, 0.0, "--duration must be > 0"),
        (10.0, 5, 1.0, "not both"),
    ],
)
def test_invalid_runs_are_config_errors(rate: float, count: int | None, duration: float | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_run(rate, count, duration)


@pytest.mark.parametrize(("rate", "count", "duration"), [(0.0, None, None), (5.0, 1, None), (1e6, None, 0.5)])
def test_valid_runs_pass(rate: float, count: int | None, duration: float | None) -> None:
    validate_run(rate, count, duration)


def test_run_ids_are_unique_and_carry_the_seed() -> None:
    ids = {new_run_id(7) for _ in range(50)}

    assert len(ids) == 50
    assert all("-seed7-" in run_id for run_id in ids)


def test_truth_of_a_failed_run_does_not_move_latest(tmp_path: Path) -> None:
    good = write_truth(tmp_path, "run-a", b'{"a": 1}', latest=True)
    bad = write_truth(tmp_path, "run-b", b'{"b": 2}', latest=False)

    assert good.read_bytes() == b'{"a": 1}'
    assert bad.read_bytes() == b'{"b": 2}'
    assert (tmp_path / "latest.json").read_bytes() == b'{"a": 1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.json", "run-a.json", "run-b.json"]


def test_a_statistics_report_says_how_many_records_of_each_partition_were_acknowledged() -> None:
    report = orjson.loads(statistics("learned", topic="events", acked={0: 189, 1: 0, 5: 3}))
    assert acknowledged(report, "events") == {0: 189, 1: 0, 5: 3}  # librdkafka's queue without a partition left out
    assert acknowledged(report, "other") == {}
    assert acknowledged({}, "events") == {}  # no report yet: nothing acknowledged


@pytest.mark.parametrize(
    ("purged", "end", "counted"),
    [
        (5, 1_000 + 40, 0),  # every record beyond the acknowledged ones was never stored
        (5, 1_000 + 40 + 3, 3),  # a cut-off request's three records were stored: the three oldest purged
        (5, 1_000 + 40 + 5, 5),
        (5, 1_000 + 40 + 6, None),  # more than it purged: another producer wrote there
        (5, 1_000 + 39, None),  # fewer than it had acknowledged: not the producer's records (a failure, a truncation)
    ],
)
def test_the_stored_purged_records_are_counted_beyond_the_acknowledged_ones(
    purged: int, end: int, counted: int | None
) -> None:
    """The producer's records began at offset 1,000 of partition 0, and it had 40 acknowledged."""
    assert stored_counts({0: purged}, {0: 1_000}, {0: 40}, {0: end}) == {0: counted}


def test_where_the_producers_records_began_is_unknown_nothing_can_be_counted() -> None:
    assert stored_counts({0: 5, 3: 1}, None, {0: 40}, {0: 1_040, 3: 7}) == {0: None, 3: None}
    assert stored_counts({0: 5}, {1: 0}, {}, {0: 0, 1: 0}) == {0: None}
    assert stored_counts({2: 4}, {2: 10}, {}, {2: 10}) == {2: 0}  # no report of it: none acknowledged


def test_the_records_kafka_holds_are_not_sent_again_and_those_it_cannot_tell_are() -> None:
    purged = [PurgedRecord(f"{p}-{n}".encode(), b"k", p) for n in range(4) for p in (0, 1, 2, -1)]
    unsent, held, unchecked = split_purged(purged, {0: 2, 1: None, 2: 0})
    # in their order, less partition 0's two oldest; partition 1's all the same (a copy is a counted duplicate)
    assert unsent == [r for r in purged if r.value not in (b"0-0", b"0-1")]
    assert (held, unchecked) == (2, 4)


def _run(bootstrap: str = NOWHERE, **config: object) -> _RunProducer:
    """A run's producer that knows no broker; Kafka does not answer its replacements either (a second)."""
    kafka = KafkaSettings(_env_file=None, bootstrap_servers=bootstrap)  # type: ignore[call-arg]
    return _RunProducer(
        kafka,
        {**producer_config(kafka, ProducerSettings()), **config},
        starts=None,
        stop=threading.Event(),
        read_back_timeout_s=1.0,
    )


def test_a_replaced_producer_hands_the_records_it_never_sent_to_its_successor_in_their_order() -> None:
    """Without a reachable broker every record stays in librdkafka's queue without a partition: never sent, so
    produced again by the new producer, none counted failed (a broker that knew them could not store them twice)."""
    run = _run()
    records = [(f"value-{n}".encode(), f"key-{n % 7}".encode()) for n in range(500)]
    old = run.current
    for value, key in records:
        run.current.produce("events", value, key)
    old_watch = run.watch
    replaced_before = producer_counter("rtap_producer_clients_replaced_total")

    run.replace()

    assert run.current is not old
    assert run.watch is not old_watch  # the old client's late reports cannot speak for the new one
    assert old.flush(1) == 0  # nothing of it is left (its statistics and errors may still be queued: served here)
    assert (run.tally.failed, run.tally.first_error) == (0, None)
    assert producer_counter("rtap_producer_clients_replaced_total") == replaced_before + 1
    assert sorted(queued(run)) == sorted(records)


def test_records_of_one_key_keep_their_order_across_a_replacement() -> None:
    run = _run(partitioner="consistent")
    records = [(f"value-{n}".encode(), b"one session") for n in range(200)]
    for value, key in records:
        run.current.produce("events", value, key)

    run.replace()

    assert queued(run) == records


def test_a_record_that_may_have_been_sent_is_counted_failed_not_sent_again() -> None:
    """Only a record purged from the queue can be sent again; any other report of the old producer is a failure."""
    from confluent_kafka import KafkaError

    run = _run()
    run.tally.purged = []
    run.tally(KafkaError(KafkaError._PURGE_INFLIGHT), None)
    assert run.tally.purged == []
    assert run.tally.failed == 1
    assert run.tally.first_error is not None


def test_whether_kafka_holds_purged_records_that_had_a_partition_cannot_be_told_while_it_does_not_answer() -> None:
    """They may have been sent: only Kafka can say whether it holds them. Records without a partition were not."""
    run = _run()
    purged = [PurgedRecord(b"sent?", b"a", 2), PurgedRecord(b"never sent", b"b", -1), PurgedRecord(b"x", b"c", 2)]

    stored, why = run._stored(purged, {2: 10}, set())

    assert stored == {2: None}
    assert why.startswith("Kafka did not answer for 1 s")
    assert run._starts is None  # nor is it known where the new producer's records begin
