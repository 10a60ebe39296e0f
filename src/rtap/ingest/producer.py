"""``rtap produce``: the generator's records into Kafka, on an open-loop schedule, with every delivery accounted for.

Open loop: event *i* is due at ``t0 + i / rate`` (stretched by the generator's daily curve) whatever
happened to event *i - 1*; its ``event_time`` is that intended time. When the process falls behind (a
GC pause, a slow broker) it sends the late events at once with their intended times rather than skipping
them or sliding the schedule, so the stream's event times are the schedule's and the lag is reported.
A closed loop (wait for each send, then schedule the next) would hide exactly the stalls a load test
exists to show.

Deliveries: librdkafka is asked for error reports only (``delivery.report.only.error``), so the hot loop
pays no Python callback per successful record; after the final flush every record has either been
acknowledged (acks=all, idempotent) or reported failed, and ``delivered = produced - failed``.

A producer that knows no broker any more (librdkafka 2.16 can lose them all during a lone broker's clean shutdown:
:mod:`rtap.kafka_clients`) is replaced by a new one, which produces again, in their order, the records the old one
had not had acknowledged, less those Kafka holds. librdkafka reports them all purged from its queue, including any
whose request a broker's stop cut off after the broker had stored it (such a record goes back to the queue). Which
of a partition's purged records are stored is counted, not guessed: the idempotent producer has a partition's
records stored in the order they were produced, its statistics say how many of them were acknowledged
(:func:`acknowledged`), and the run knows where the producer's records begin in each partition (the log end before
its first record), so the stored ones are the oldest purged, as many as the log holds beyond those
(:func:`stored_counts`); they are read back and compared byte for byte before they are skipped (:func:`holds`).
Where that cannot be told (another producer wrote to the partition, a record of the producer failed, Kafka did not
answer within the delivery timeout), a partition's purged records are sent again all the same and counted
(``rtap_producer_records_resent_unchecked_total``): a copy is a duplicate the stream job counts, where a record not
sent would be an event lost.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rtap import metrics
from rtap.errors import BrokerError, ConfigError
from rtap.kafka_admin import admin_client, partition_offsets
from rtap.kafka_clients import BrokerWatch, produce_waiting
from rtap.settings import KafkaSettings, ProducerSettings, Settings

# librdkafka gives up on a record after this long; the final flush waits a little longer than that, so
# a dead broker ends a run with a failure count instead of hanging it.
DELIVERY_TIMEOUT_MS = 120_000
# After a broker restart librdkafka can keep stale partition metadata until its periodic refresh (5 min by
# default), longer than the delivery timeout: a clean-clone CI run lost 2,802 records to "Message timed out"
# although the broker was back after 10 s (librdkafka issues #569 and #3009 report the same, and this fix).
# Refreshing every 10 s keeps recovery far inside the delivery timeout, for one small request per interval.
METADATA_REFRESH_MS = 10_000
# Sends generated and produced at once when running flat out (the generator works in blocks); a block is
# also the unit of housekeeping (serve delivery reports, check stop, report progress). At 100k/s a block
# takes about 10 ms, and its events share the event_time of the moment it was made.
BLOCK_EVENTS = 1024
# How long to let librdkafka drain a full local queue before trying again.
QUEUE_FULL_WAIT_S = 0.05
# How long a producer that knows no broker is given to report the records it is purged of (at once, in practice).
PURGE_REPORTS_S = 5.0
# How long a replacement waits for Kafka to answer, to learn which purged records it holds and where the new
# producer's records begin: as long as librdkafka would have kept the records. Asked again every READ_BACK_RETRY_S.
READ_BACK_TIMEOUT_S = DELIVERY_TIMEOUT_MS / 1000
READ_BACK_RETRY_S = 1.0
# Ahead of schedule by less than this: send now rather than pay a sleep that oversleeps anyway.
MIN_SLEEP_S = 0.001
# How often the daily-curve multiplier is re-read: it changes over hours, not microseconds.
MULTIPLIER_REFRESH_S = 1.0

log = logging.getLogger("rtap.produce")


def producer_config(kafka: KafkaSettings, producer: ProducerSettings) -> dict[str, Any]:
    """librdkafka settings for ``rtap produce``: durable, ordered per key, batched, Java-compatible keys.

    ``murmur2_random`` is the Java client's partitioner (murmur2 of the key, random for null keys), which
    is what the generator's ground truth predicts partitions with.
    """
    return {
        **kafka.client_config(),
        "client.id": "rtap-producer",
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": producer.compression,
        "linger.ms": producer.linger_ms,
        "batch.size": producer.batch_bytes,
        "queue.buffering.max.messages": producer.queue_max_messages,
        "partitioner": "murmur2_random",
        "message.timeout.ms": DELIVERY_TIMEOUT_MS,
        "topic.metadata.refresh.interval.ms": METADATA_REFRESH_MS,
        "delivery.report.only.error": True,
    }


def validate_run(rate: float, count: int | None, duration_s: float | None) -> None:
    """Reject impossible run shapes before anything connects (ConfigError: one line, exit 2)."""
    if not math.isfinite(rate) or rate < 0:
        raise ConfigError(f"--rate must be >= 0 events/s (0 = as fast as possible), got {rate}")
    if count is not None and duration_s is not None:
        raise ConfigError("give --count or --duration, not both")
    if count is not None and count < 1:
        raise ConfigError(f"--count must be >= 1, got {count}")
    if duration_s is not None and (not math.isfinite(duration_s) or duration_s <= 0):
        raise ConfigError(f"--duration must be > 0 seconds, got {duration_s}")


class OpenLoopSchedule:
    """When each event is due, in seconds after the start: ``i / rate``, stretched by a rate multiplier.

    The multiplier (the generator's daily curve, a function of the wall-clock time of the schedule) is
    re-read every ``refresh_s`` of schedule time; between refreshes offsets are computed from the last
    refresh point by multiplication, not by adding up intervals, so a constant rate gives exactly
    ``i / rate`` however long the run.
    """

    def __init__(
        self,
        rate: float,
        multiplier: Callable[[float], float] | None = None,
        wall_start: float = 0.0,
        refresh_s: float = MULTIPLIER_REFRESH_S,
    ) -> None:
        if rate <= 0:
            raise ConfigError(f"a schedule needs a rate > 0, got {rate}")
        self._rate = rate
        self._multiplier = multiplier
        self._wall_start = wall_start
        self._refresh_s = refresh_s
        self._base = 0.0  # offset of the last refresh point
        self._steps = 0  # events since that point
        self._interval = self._interval_at(0.0)
        self._next_refresh = refresh_s

    def _interval_at(self, offset: float) -> float:
        factor = 1.0 if self._multiplier is None else self._multiplier(self._wall_start + offset)
        if not factor > 0:
            raise ConfigError(f"the rate multiplier must be > 0, got {factor}")
        return 1.0 / (self._rate * factor)

    def next_offset(self) -> float:
        """The due offset of the next event (the first is 0.0)."""
        offset = self._base + self._steps * self._interval
        if self._multiplier is not None and offset >= self._next_refresh:
            self._base, self._steps = offset, 0
            self._interval = self._interval_at(offset)
            self._next_refresh = offset + self._refresh_s
        self._steps += 1
        return offset


@dataclass(frozen=True)
class ProduceProgress:
    """A snapshot for progress displays, taken between two housekeeping steps."""

    scheduled: int
    produced: int
    in_flight: int
    failed: int
    elapsed_s: float
    lag_s: float


@dataclass(frozen=True)
class ProduceReport:
    """The outcome of one run. ``failed`` counts records Kafka did not acknowledge."""

    run_id: str
    topic: str
    scheduled: int
    produced: int
    failed: int
    elapsed_s: float
    max_lag_s: float
    final_lag_s: float
    truth_path: Path
    first_error: str | None = None

    @property
    def delivered(self) -> int:
        return self.produced - self.failed

    @property
    def records_per_s(self) -> float:
        return self.produced / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True)
class PurgedRecord:
    """A record a replaced producer reported purged from its queue: never acknowledged, perhaps stored."""

    value: bytes
    key: bytes
    partition: int  # -1: it never had one, so it was never sent


def acknowledged(report: Mapping[str, Any], topic: str) -> dict[int, int]:
    """Per partition of ``topic``: how many records the idempotent producer that made the statistics ``report`` had
    acknowledged. librdkafka numbers a partition's records 1, 2, ... as they are produced and reports the last one
    acknowledged (``acked_msgid``)."""
    partitions = ((report.get("topics") or {}).get(topic) or {}).get("partitions") or {}
    return {int(p): int(stats.get("acked_msgid") or 0) for p, stats in partitions.items() if int(p) >= 0}


def stored_counts(
    purged: Mapping[int, int], starts: Mapping[int, int] | None, acked: Mapping[int, int], ends: Mapping[int, int]
) -> dict[int, int | None]:
    """Per partition with ``purged[p]`` purged records: how many of them, the oldest, Kafka holds if no other
    producer wrote to it: the log's records beyond where the producer's began (``starts``) and the ones it had
    acknowledged. None where that count cannot be the producer's (no known start, below zero, above ``purged``)."""
    counts: dict[int, int | None] = {}
    for partition, queued in purged.items():
        start = None if starts is None else starts.get(partition)
        end = ends.get(partition)
        stored = None if start is None or end is None else end - start - acked.get(partition, 0)
        counts[partition] = stored if stored is not None and 0 <= stored <= queued else None
    return counts


def split_purged(
    purged: Sequence[PurgedRecord], stored: Mapping[int, int | None]
) -> tuple[list[PurgedRecord], int, int]:
    """``purged`` in its order, less the oldest ``stored[p]`` of each partition (Kafka holds them): the records to
    send again, how many Kafka holds, and how many of those sent again are of a partition whose count is None
    (whether Kafka holds some of them could not be told). Those are sent again all the same: a copy is a duplicate
    the stream job counts, a record not sent is an event lost."""
    skipped: dict[int, int] = {}
    unsent: list[PurgedRecord] = []
    unchecked = 0
    for record in purged:
        held = stored.get(record.partition, 0)
        if held is None:
            unchecked += 1
        elif skipped.get(record.partition, 0) < held:
            skipped[record.partition] = skipped.get(record.partition, 0) + 1
            continue
        unsent.append(record)
    return unsent, sum(skipped.values()), unchecked


def end_offsets(kafka: KafkaSettings, timeout_s: float, stop: threading.Event) -> dict[int, int]:
    """Each partition's log end, asked until Kafka answers: :class:`BrokerError` after ``timeout_s``, or once
    ``stop`` is set."""
    admin = admin_client(kafka)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            attempt_s = max(0.1, min(5.0, deadline - time.monotonic()))
            offsets = partition_offsets(admin, [kafka.topic], "latest", timeout_s=attempt_s)
            return {partition: offset for (_, partition), offset in offsets.items()}
        except BrokerError as error:
            if time.monotonic() >= deadline:
                raise BrokerError(f"Kafka did not answer for {timeout_s:.0f} s ({error})") from error
            if stop.wait(READ_BACK_RETRY_S):
                raise BrokerError("the run was stopped before Kafka answered") from error


def holds(
    kafka: KafkaSettings, expected: Mapping[int, tuple[int, Sequence[PurgedRecord]]], timeout_s: float
) -> dict[int, bool]:
    """Whether each partition ``p`` holds, from offset ``expected[p][0]`` on, the records ``expected[p][1]`` (keys
    and values, in their order; at least one). :class:`BrokerError` when they cannot be read in ``timeout_s``."""
    from confluent_kafka import Consumer, TopicPartition

    wanted = {partition: [(r.key, r.value) for r in records] for partition, (_, records) in expected.items()}
    found: dict[int, list[tuple[bytes, bytes]]] = {partition: [] for partition in wanted}
    # Assigned, not subscribed, and committing nothing: the group id librdkafka requires leaves no group behind.
    consumer = Consumer(
        {**kafka.client_config(), "group.id": "rtap-produce-read-back", "enable.auto.commit": False, "log_level": 2}
    )
    deadline = time.monotonic() + timeout_s
    try:
        consumer.assign([TopicPartition(kafka.topic, p, first) for p, (first, _) in expected.items()])
        while any(len(found[p]) < len(wanted[p]) for p in wanted):
            if time.monotonic() >= deadline:
                raise BrokerError(f"reading back {kafka.topic} took more than {timeout_s:.0f} s")
            for message in consumer.consume(num_messages=10_000, timeout=1.0):
                if message.error() is not None:
                    raise BrokerError(f"reading back {kafka.topic}: {message.error()}")
                partition = message.partition()
                if partition in found and len(found[partition]) < len(wanted[partition]):
                    found[partition].append((message.key() or b"", message.value() or b""))
    finally:
        consumer.close()
    return {partition: found[partition] == wanted[partition] for partition in wanted}


class _DeliveryTally:
    """librdkafka's delivery callback; with ``delivery.report.only.error`` it only sees failures.

    While a producer that knows no broker is purged (``purged`` is a list), the records it reports purged from its
    queue are kept there, to be produced again unless Kafka holds them, instead of counted failed. The partitions
    of the current producer's failed records (``failed_partitions``) are those whose count of acknowledged records
    no longer tells where its stored ones end.
    """

    def __init__(self, purged_from_queue: int) -> None:
        self.failed = 0
        self.first_error: str | None = None
        self.purged: list[PurgedRecord] | None = None
        self.failed_partitions: set[int] = set()
        self._purged_from_queue = purged_from_queue  # KafkaError._PURGE_QUEUE: confluent_kafka is imported late

    def __call__(self, error: Any, message: Any) -> None:
        if error is None:
            return
        partition = message.partition() if message is not None else None
        if self.purged is not None and error.code() == self._purged_from_queue:
            self.purged.append(PurgedRecord(message.value(), message.key(), -1 if partition is None else partition))
            return
        if partition is not None:
            self.failed_partitions.add(partition)
        self.count_failed(1, str(error))

    def count_failed(self, records: int, why: str) -> None:
        self.failed += records
        metrics.PRODUCER.delivery_failures.inc(records)
        if self.first_error is None:
            self.first_error = why


class _RunProducer:
    """A run's producer, replaced whenever it knows no broker any more (see the module docstring).

    ``current`` changes on a replacement: the hot loop, which binds its methods, binds them again after each call
    here that may replace it.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        config: dict[str, Any],
        *,
        starts: dict[int, int] | None,
        stop: threading.Event,
        read_back_timeout_s: float = READ_BACK_TIMEOUT_S,
    ) -> None:
        """``starts``: each partition's log end before the first producer's first record (None: unknown, so whether
        Kafka holds some of a replaced producer's records cannot be told: they are sent again unchecked). ``stop``
        ends a replacement's wait for Kafka."""
        from confluent_kafka import KafkaError

        self._kafka = kafka
        self._config = config
        self._topic = kafka.topic
        self._starts = starts
        self._stop = stop
        self._read_back_timeout_s = read_back_timeout_s
        self.tally = _DeliveryTally(KafkaError._PURGE_QUEUE)
        self.watch: BrokerWatch  # the current producer's, set by _new
        self.current = self._new()

    def _new(self) -> Any:
        from confluent_kafka import Producer

        self.watch = BrokerWatch()
        return Producer({**self._config, "on_delivery": self.tally, **self.watch.config()})

    def replace(self) -> None:
        """A new producer; the records the old one had queued go to it, in their order, less those Kafka holds;
        any other record of the old one counts failed."""
        old = self.current
        # The report that found it lost came after its last broker was gone: no acknowledgement can follow it.
        acked = acknowledged(self.watch.report, self._topic)
        self.current = self._new()
        metrics.PRODUCER.clients_replaced.inc()
        failed_before = self.tally.failed
        self.tally.purged = []
        old.purge()
        left = old.flush(PURGE_REPORTS_S)
        purged, self.tally.purged = self.tally.purged, None
        failed_partitions, self.tally.failed_partitions = self.tally.failed_partitions, set()
        if left:
            self.tally.count_failed(left, f"{left} records of a replaced producer were never reported")
        log.warning(
            "the Kafka producer knew no broker any more (lost during a broker's shutdown): asking Kafka (for at most"
            " %.0f s) which of the %d records it had not had acknowledged it holds",
            self._read_back_timeout_s,
            len(purged),
        )
        stored, why = self._stored(purged, acked, failed_partitions)
        unsent, held, unchecked = split_purged(purged, stored)
        log.warning(
            "the Kafka producer that knew no broker is replaced by a new one,"
            " which sends again the %d records Kafka does not hold (%d it holds already, %d failed)",
            len(unsent),
            held,
            self.tally.failed - failed_before,
        )
        if unchecked:
            metrics.PRODUCER.resent_unchecked.inc(unchecked)
            log.warning(
                "%d of them are of partitions where it could not be told whether Kafka holds some already (%s):"
                " any it holds is stored twice, and the stream job counts the copy a duplicate",
                unchecked,
                why,
            )
        for record in unsent:  # at most the old queue's bound: the new queue has room for them
            produce_waiting(self.current, self._topic, key=record.key, value=record.value)

    def _stored(
        self, purged: Sequence[PurgedRecord], acked: Mapping[int, int], failed_partitions: set[int]
    ) -> tuple[dict[int, int | None], str]:
        """How many of each partition's purged records Kafka holds (None: cannot be told; and why not); learns
        where the new producer's records begin (Kafka's log ends now: it has sent nothing yet)."""
        queued: dict[int, list[PurgedRecord]] = {}
        for record in purged:
            if record.partition >= 0:
                queued.setdefault(record.partition, []).append(record)
        try:
            ends = end_offsets(self._kafka, self._read_back_timeout_s, self._stop)
        except BrokerError as error:
            self._starts = None
            return dict.fromkeys(queued), str(error)
        starts, self._starts = self._starts, ends
        counts = stored_counts({p: len(records) for p, records in queued.items()}, starts, acked, ends)
        for partition in failed_partitions & counts.keys():
            counts[partition] = None
        why = (
            "Kafka did not answer when the producer's records began"
            if starts is None
            else "records of the producer failed, or another producer wrote to the same partitions"
        )
        expected = {p: ((starts or {})[p] + acked.get(p, 0), queued[p][:held]) for p, held in counts.items() if held}
        if not expected:
            return counts, why
        try:
            held_as_counted = holds(self._kafka, expected, self._read_back_timeout_s)
        except BrokerError as error:
            return {p: (None if p in expected else held) for p, held in counts.items()}, str(error)
        return {p: (held if held_as_counted.get(p, True) else None) for p, held in counts.items()}, why

    def produce_when_there_is_room(self, value: bytes, key: bytes) -> None:
        """Produce one record once librdkafka's local queue has room again (it drains as the broker acks)."""
        while True:
            self.current.poll(QUEUE_FULL_WAIT_S)
            if self.watch.lost:  # nothing would drain the queue before the records time out
                self.replace()
            try:
                self.current.produce(self._topic, value, key)
            except BufferError:
                continue
            return

    def flush(self, timeout_s: float) -> int:
        """Wait for every record's report, at most ``timeout_s``; returns how many are still queued."""
        deadline = time.monotonic() + timeout_s
        while True:
            left: int = self.current.flush(min(1.0, max(0.0, deadline - time.monotonic())))
            if not left or time.monotonic() >= deadline:
                return left
            if self.watch.lost:
                self.replace()


def new_run_id(seed: int) -> str:
    """Sortable by start time, with the seed for reproduction, unique with a random suffix."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-seed{seed}-{secrets.token_hex(3)}"


def write_truth(truth_dir: Path, run_id: str, payload: bytes, *, latest: bool) -> Path:
    """Write ``<run_id>.json`` (and ``latest.json`` when asked) atomically: a reader never sees half a file."""
    truth_dir.mkdir(parents=True, exist_ok=True)
    names = [f"{run_id}.json", "latest.json"] if latest else [f"{run_id}.json"]
    for name in names:
        partial = truth_dir / f".{name}.{os.getpid()}.tmp"
        partial.write_bytes(payload)
        partial.replace(truth_dir / name)
    return truth_dir / f"{run_id}.json"


def produce_run(
    settings: Settings,
    *,
    rate: float,
    count: int | None = None,
    duration_s: float | None = None,
    seed: int | None = None,
    stop: threading.Event | None = None,
    on_progress: Callable[[ProduceProgress], None] | None = None,
    progress_interval_s: float = 0.25,
) -> ProduceReport:
    """Generate and produce one run; returns its report (the caller decides what a failure means).

    Runs until ``count`` events were scheduled, ``duration_s`` of schedule passed, or ``stop`` is set.
    An event is one scheduled send; the generator may emit more than one record for it (duplicates), so
    ``produced`` can exceed ``scheduled``. The ground truth goes to ``settings.paths.truth``; ``latest.json``
    is only pointed at runs whose every record was delivered.
    """
    validate_run(rate, count, duration_s)
    from rtap.generate import ClickstreamGenerator
    from rtap.ingest.topics import ensure_topics, topic_partitions

    generator_settings = settings.generator
    if seed is not None:
        generator_settings = generator_settings.model_copy(update={"seed": seed})
    kafka = settings.kafka
    ensure_topics(kafka, timeout_s=15.0)
    # The topic's own count, not RTAP_KAFKA_PARTITIONS: an existing topic may have grown (rtap.ingest.topics), and
    # the producer's partitioner spreads keys over the partitions the topic has.
    partitions = topic_partitions(kafka, kafka.topic, timeout_s=15.0)
    if partitions is None:
        raise BrokerError(f"topic {kafka.topic} vanished right after it was checked")
    generator = ClickstreamGenerator(
        generator_settings, partitions=partitions, watermark_delay_s=settings.stream.watermark_delay_s
    )
    run_id = new_run_id(generator_settings.seed)
    topic = kafka.topic
    stop = stop if stop is not None else threading.Event()
    # Where the run's records will begin in each partition: what tells, should its producer be replaced, which of
    # the records it never had acknowledged Kafka holds.
    starts = end_offsets(kafka, timeout_s=15.0, stop=stop)
    run = _RunProducer(kafka, producer_config(kafka, settings.producer), starts=starts, stop=stop)

    produce = run.current.produce
    poll = run.current.poll
    generate_block = generator.generate_block
    count_sent = metrics.PRODUCER.sent.inc
    monotonic = time.monotonic
    from_timestamp = datetime.fromtimestamp

    mono_start = monotonic()
    wall_start = time.time()
    schedule, due = None, 0.0
    if rate > 0:

        def multiplier(wall: float) -> float:
            return float(generator.rate_multiplier(from_timestamp(wall, UTC)))

        schedule = OpenLoopSchedule(rate, multiplier, wall_start)
        due = schedule.next_offset()  # the offset of the next event not yet sent
    scheduled = produced = 0
    max_lag = lag = 0.0
    next_progress = mono_start + progress_interval_s

    while count is None or scheduled < count:
        room = BLOCK_EVENTS if count is None else min(BLOCK_EVENTS, count - scheduled)
        if schedule is None:
            # Flat out: a block of sends at once, all stamped with the moment they are made.
            times_ms = [time.time_ns() // 1_000_000] * room
        else:
            if duration_s is not None and due >= duration_s:
                break
            ahead = mono_start + due - monotonic()
            if ahead >= MIN_SLEEP_S:
                if stop.wait(ahead):
                    break
                continue
            # Everything due by now (or within MIN_SLEEP_S) goes in this block, with its intended time.
            lag = max(0.0, -ahead)
            max_lag = max(max_lag, lag)
            horizon = monotonic() - mono_start + MIN_SLEEP_S
            times_ms = []
            while len(times_ms) < room and due <= horizon and (duration_s is None or due < duration_s):
                times_ms.append(round((wall_start + due) * 1e6) // 1000)
                due = schedule.next_offset()
        block = generate_block(times_ms)
        for value, key in zip(block.values, block.keys, strict=True):
            try:
                produce(topic, value, key)
            except BufferError:  # the local queue is full: let librdkafka drain it, then retry
                run.produce_when_there_is_room(value, key)
                produce, poll = run.current.produce, run.current.poll
        produced += len(block.values)
        count_sent(len(block.values))
        scheduled += len(times_ms)
        poll(0)  # serve delivery reports (failures only) and statistics
        if run.watch.lost:
            run.replace()
            produce, poll = run.current.produce, run.current.poll
        now = monotonic()
        if stop.is_set() or (schedule is None and duration_s is not None and now - mono_start >= duration_s):
            break
        if on_progress is not None and now >= next_progress:
            next_progress = now + progress_interval_s
            on_progress(ProduceProgress(scheduled, produced, len(run.current), run.tally.failed, now - mono_start, lag))

    remaining = run.flush(DELIVERY_TIMEOUT_MS / 1000 + 10)
    metrics.PRODUCER.delivery_failures.inc(remaining)
    elapsed = monotonic() - mono_start
    failed = run.tally.failed + remaining
    first_error = run.tally.first_error or (
        f"{remaining} records still queued after the final flush" if remaining else None
    )
    if on_progress is not None:
        on_progress(ProduceProgress(scheduled, produced, remaining, failed, elapsed, lag))
    truth_path = write_truth(settings.paths.truth, run_id, generator.truth.to_json(), latest=failed == 0)
    return ProduceReport(
        run_id=run_id,
        topic=topic,
        scheduled=scheduled,
        produced=produced,
        failed=failed,
        elapsed_s=elapsed,
        max_lag_s=max_lag,
        final_lag_s=lag,
        truth_path=truth_path,
        first_error=first_error,
    )
