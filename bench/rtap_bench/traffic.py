"""Realistic traffic offered open loop by a plain producer, and the per-event freshness it was served with.

One home for the outside measurement: ``bench/outside.py`` runs it against a running stack, ``rtap bench``
runs the sender in its own process (``python -m rtap_bench.traffic``) against the job it measures, and both
read freshness with :func:`freshness`. Nothing of rtap's producer or generator is used on the sending side: a
confluent-kafka producer sends, like a team's own producer would,

- valid contract-v1 events (page views, product views, carts, checkouts, purchases) keyed by session;
- ~1% exact re-sends of the previous valid event (duplicates), ~0.5% truncated JSON (dead letters) and ~0.3%
  events stamped two minutes before their send time (late).

Each event is stamped with its *intended* send time (the open-loop schedule), so a sender that falls behind
shows as staleness, never as a lower rate; how far behind it fell is part of the result, overall and per minute
of the schedule.

The sender knows exactly what it sent, so a run is reconciled exactly: the dirt is chosen so that the job's
rules classify every record one way only. A duplicate re-sends a valid on-time event (never a late or broken
one); a late event goes to a session that had an on-time event less than ``LATE_BY_S - watermark delay -
LATE_MARGIN_S`` seconds of schedule before it (same key, so the same partition, before it in Kafka order:
ordered by the idempotent producer), so its partition's high-water mark is at most that much older than its
own time and it is behind the watermark, however long the run (a soak lasts hours); a truncated record loses
its closing brace, so it is never JSON.

Per-event freshness = ``pipeline_batches.finished_at`` of the batch that stored the event minus its
``event_time``: every row of a batch is written before its commit record, whose ``finished_at`` is taken just
before that last write, so a reader sees the event at most this late. Over every event of the run that was
accepted into ``events`` (duplicates, late events and dead letters are not in it).
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import math
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self

from rtap.errors import BrokerError
from rtap.runtime.process import die_with_parent

if TYPE_CHECKING:
    from rtap.warehouse import WarehouseClient

DUPLICATE_RATE = 0.01
MALFORMED_RATE = 0.005
LATE_RATE = 0.003
LATE_BY_S = 120.0
# A late event's session had an on-time event at most this much less than LATE_BY_S - watermark delay before it:
# room for a mark that the job's clock clamp holds back (by at most its record's Kafka timestamp + 1 s).
LATE_MARGIN_S = 1.0
SESSIONS = 2_000
# Distinct event bodies per run, cycled (each send gets its own event_id and time): preparing every send
# before the clock starts would need ~650 bytes of Python objects per event (1.3 GB for 100,000/s x 20 s).
TEMPLATES = 10_000
FLUSH_TIMEOUT_S = 60.0
FULL_QUEUE_POLLS = 1_200  # of 50 ms each: a queue full for about a minute means the broker is not taking records

CLEAN, DUPLICATE, MALFORMED, LATE = 0, 1, 2, 3
PAGES = [f"https://shop.example/p/{i}" for i in range(200)]
TYPES = ["page_view"] * 60 + ["product_view"] * 25 + ["add_to_cart"] * 8 + ["checkout"] * 4 + ["purchase"] * 3
_ID_MARK = "00000000-0000-4000-8000-000000000000"  # placeholders split out of each template
_TIME_MARK = "1970-01-01T00:00:00.000Z"

# Each event's freshness in whole milliseconds (both times are milliseconds), counted per value: the answer and the
# query's memory are bounded by the distinct values (thousands), not by the window's events. An exact quantile
# over the events themselves needed more than the reader's 256 MiB for a 10-minute step at 54,000 events/s (32M
# events); the quantiles come from the counts, exactly (exact_quantile).
_STEP_FRESHNESS = """
SELECT f, count(), max(stored)
FROM (
    SELECT toUnixTimestamp64Milli(b.finished_at) - toUnixTimestamp64Milli(e.event_time) AS f,
           toUnixTimestamp64Milli(b.finished_at) AS stored
    FROM {db}.events AS e
    INNER JOIN (SELECT batch_id, finished_at FROM {db}.pipeline_batches FINAL WHERE query_id = {q:String}) AS b
        ON e.batch_id = b.batch_id
    WHERE e.event_time >= fromUnixTimestamp64Milli({since:Int64})
      AND e.event_time < fromUnixTimestamp64Milli({until:Int64}) AND e.user_id LIKE {run:String}
)
GROUP BY f ORDER BY f
"""
_QUERY_ID = "SELECT argMax(query_id, finished_at) FROM {db}.pipeline_batches FINAL"


@dataclass(frozen=True)
class Sent:
    """What one run sent, by what the job must make of it, and how well the sender kept its schedule."""

    rate: float  # offered: the schedule's events/s
    seconds: float
    sent: int  # every record, dirt included
    valid: int  # accepted into events: valid, on time, first copy
    duplicates: int
    malformed: int  # dead letters
    late: int
    sessions: int  # distinct session ids among the valid events
    failed: int  # not acknowledged by the broker: the truth above is then not what the topic holds
    started: float  # epoch s: the schedule's start (the first event's event_time)
    ended: float  # epoch s: the last send, before the final flush
    producer_max_behind_s: float  # the furthest any send fell behind its due time
    # The same per minute of the schedule: minute k holds the sends due in [started + 60 k, started + 60 (k + 1)).
    behind_by_minute_s: list[float] = field(default_factory=list)

    @property
    def achieved_rate(self) -> float:
        """Events/s the sender really handed to the producer over the run."""
        return self.sent / (self.ended - self.started) if self.ended > self.started else 0.0


class Traffic:
    """The sends of one run, decided before the clock starts so that sending costs a concatenation.

    ``payload(i, due)`` is the i-th record stamped ``due``; call it in order (a duplicate re-sends the
    previous valid payload). The counts say what the job must make of the whole run. ``late_within``: a late
    event goes only to a session whose last on-time event was fewer than this many sends before it (None: any
    earlier one in the run; the same for a run shorter than the window).
    """

    def __init__(self, count: int, run: str, seed: int, late_within: float | None = None) -> None:
        rng = random.Random(seed)
        sessions = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(SESSIONS)]
        self._templates = [_template(rng.choice(sessions), run, rng) for _ in range(max(1, min(count, TEMPLATES)))]
        # event_id = a random per-run UUIDv4 prefix + the send's index: unique, and one format per send.
        digits = f"{rng.getrandbits(72):018x}"
        variant = "89ab"[rng.randrange(4)]
        self._id_prefix = f"{digits[:8]}-{digits[8:12]}-4{digits[12:15]}-{variant}{digits[15:]}-".encode()
        self._kinds = bytearray(count)
        counts = [0, 0, 0, 0]
        last_on_time: dict[bytes, int] = {}  # session -> index of its latest on-time send
        window = count if late_within is None else late_within
        n = len(self._templates)
        for i in range(count):
            roll = rng.random()
            session = self._templates[i % n][0]
            if roll < DUPLICATE_RATE and counts[CLEAN]:
                kind = DUPLICATE
            elif roll < DUPLICATE_RATE + MALFORMED_RATE:
                kind = MALFORMED
            elif (
                roll < DUPLICATE_RATE + MALFORMED_RATE + LATE_RATE
                and (last := last_on_time.get(session)) is not None
                and i - last < window
            ):
                kind = LATE
            else:
                kind = CLEAN
                last_on_time[session] = i
            self._kinds[i] = kind
            counts[kind] += 1
        self.count = count
        self.valid, self.duplicates, self.malformed, self.late = counts
        self.sessions = len(last_on_time)
        self._last = (b"", b"")
        self._stamp_ms = -1
        self._stamp = b""

    def payload(self, i: int, due: float) -> tuple[bytes, bytes]:
        """(key, value) of the i-th send, its event_time ``due`` (epoch s) or, when late, LATE_BY_S before it."""
        kind = self._kinds[i]
        if kind == DUPLICATE:
            return self._last
        key, head, middle, tail = self._templates[i % len(self._templates)]
        millis = round(due * 1000)
        if kind == LATE:
            stamp = _stamp(millis - int(LATE_BY_S * 1000))
        else:
            if millis != self._stamp_ms:
                self._stamp_ms, self._stamp = millis, _stamp(millis)
            stamp = self._stamp
        value = b"".join((head, b"%s%012x" % (self._id_prefix, i), middle, stamp, tail))
        if kind == MALFORMED:
            return key, value[: -(len(tail) // 2 + 1)]  # cut in the middle of the JSON: the closing brace is gone
        if kind == CLEAN:
            self._last = (key, value)
        return key, value


def _stamp(millis: int) -> bytes:
    moment = datetime.fromtimestamp(millis // 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.").encode() + b"%03dZ" % (millis % 1000)


def _template(session: str, run: str, rng: random.Random) -> tuple[bytes, bytes, bytes, bytes]:
    """(key, JSON before event_id, between event_id and event_time, after event_time) of one event body."""
    kind = rng.choice(TYPES)
    event: dict[str, Any] = {
        "event_id": _ID_MARK,
        "event_type": kind,
        "event_time": _TIME_MARK,
        "user_id": f"{run}-u{rng.randrange(5000)}",
        "session_id": session,
        "page_url": rng.choice(PAGES),
        "referrer": "https://www.google.com/",
        "ip_address": f"203.0.{rng.randrange(256)}.{rng.randrange(256)}",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0",
        "device": rng.choice(["desktop", "mobile", "tablet"]),
        "country": rng.choice(["DE", "FR", "US", "BR"]),
    }
    if kind != "page_view":
        event.update(product_id=f"p{rng.randrange(500)}", category="shirts", price=round(rng.uniform(5, 200), 2))
    if kind == "purchase":
        event.update(quantity=rng.randrange(1, 4), order_id=str(uuid.UUID(int=rng.getrandbits(128))))
    head, rest = json.dumps(event).encode().split(_ID_MARK.encode())
    middle, tail = rest.split(_TIME_MARK.encode())
    return session.encode(), head, middle, tail


def offer(
    bootstrap: str,
    topic: str,
    rate: float,
    seconds: float,
    run: str,
    seed: int,
    watermark_delay_s: float = 30.0,
    start_at: float | None = None,
) -> Sent:
    """Send ``rate`` events/s for ``seconds``, open loop, and flush; what was sent and how far the sender fell behind.

    ``watermark_delay_s`` is the job's: a late event is only certain to be late when its session's previous
    on-time event is less than ``LATE_BY_S`` minus that delay older (module docstring). ``start_at``: the
    schedule's start (epoch s) when the run is prepared sooner; otherwise (and by default) as soon as it is.
    """
    from confluent_kafka import Producer

    late_window_s = LATE_BY_S - watermark_delay_s - LATE_MARGIN_S
    if late_window_s <= 0:
        raise ValueError(f"a watermark delay of {watermark_delay_s:.0f} s: events {LATE_BY_S:.0f} s old are on time")
    traffic = Traffic(max(1, round(rate * seconds)), run, seed, late_within=late_window_s * rate)
    errors: list[str] = []
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 5, "compression.type": "lz4", "acks": "all",
         "enable.idempotence": True, "queue.buffering.max.messages": 1_000_000,
         "delivery.report.only.error": True, "on_delivery": lambda error, _m: errors.append(str(error))}
    )  # fmt: skip
    producer.list_topics(topic, timeout=30)  # connections and metadata before the clock starts
    produce, poll, clock, sleep = producer.produce, producer.poll, time.time, time.sleep
    payload, interval = traffic.payload, 1 / rate
    if start_at is not None and start_at > clock():
        sleep(start_at - clock())
    start = clock()
    behind = 0.0  # in the current minute of the schedule
    by_minute: list[float] = []
    minutes = minute_ends(rate)
    next_minute = next(minutes)
    for i in range(traffic.count):
        if i == next_minute:
            by_minute.append(round(behind, 3))
            behind, next_minute = 0.0, next(minutes)
        due = start + i * interval
        now = clock()
        if due - now > 0.001:  # a sleep shorter than this oversleeps; the schedule catches up after it
            sleep(due - now)
        elif now - due > behind:
            behind = now - due
        key, value = payload(i, due)
        for _ in range(FULL_QUEUE_POLLS):
            try:
                produce(topic, value, key)
                break
            except BufferError:
                poll(0.05)
        else:
            raise BrokerError(f"the producer's queue stayed full for a minute after {i:,} sends to {bootstrap}")
        if i % 1024 == 0:
            poll(0)
    ended = clock()
    by_minute.append(round(behind, 3))
    undelivered = producer.flush(FLUSH_TIMEOUT_S)
    return Sent(
        rate=rate,
        seconds=seconds,
        sent=traffic.count,
        valid=traffic.valid,
        duplicates=traffic.duplicates,
        malformed=traffic.malformed,
        late=traffic.late,
        sessions=traffic.sessions,
        failed=len(errors) + undelivered,
        started=start,
        ended=ended,
        producer_max_behind_s=max(by_minute),
        behind_by_minute_s=by_minute,
    )


def minute_ends(rate: float) -> Iterator[int]:
    """The index of the first send of each next minute of the schedule (send i is due at i / rate)."""
    minute = 1
    while True:
        yield math.ceil(60 * minute * rate)
        minute += 1


class Sender:
    """:func:`offer` in a process of its own, as an outside producer is: it shares the machine's cores with the
    job, not the measuring process's interpreter. Started on construction; :meth:`result` waits for it; leaving
    the ``with`` block ends a sender still running (the caller failed meanwhile)."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        rate: float,
        seconds: float,
        run: str,
        seed: int,
        watermark_delay_s: float,
        start_at: float | None = None,
    ) -> None:
        args = [sys.executable, "-m", "rtap_bench.traffic", "--bootstrap", bootstrap, "--topic", topic]
        args += ["--rate", str(rate), "--seconds", str(seconds), "--run", run, "--seed", str(seed)]
        args += ["--watermark-delay", str(watermark_delay_s)]
        if start_at is not None:
            args += ["--start-at", repr(start_at)]
        self.seconds = seconds
        # Preparing the run (1-2 s per million sends) and the final flush come on top of the schedule.
        waiting = 0.0 if start_at is None else max(0.0, start_at - time.time())
        self._timeout = waiting + 2 * seconds + FLUSH_TIMEOUT_S + 120 + 5e-6 * rate * seconds
        # Files, not pipes: librdkafka may log to stderr for hours, and a full pipe would stall the sender.
        self._out = tempfile.TemporaryFile()  # noqa: SIM115 - closed by __exit__
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 - closed by __exit__
        # A bench stopped by a signal leaves no sender behind.
        self.process = subprocess.Popen(args, stdout=self._out, stderr=self._err, preexec_fn=die_with_parent())

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._out.close()
        self._err.close()

    def result(self) -> Sent:
        """What the run sent, once the sender flushed and exited."""
        try:
            code = self.process.wait(timeout=self._timeout)
        except subprocess.TimeoutExpired as exc:
            self.process.kill()
            self.process.wait()
            raise BrokerError(
                f"the traffic sender did not finish a {self.seconds:.0f} s run in {self._timeout:.0f} s"
            ) from exc
        self._out.seek(0)
        self._err.seek(0)
        out, err = self._out.read().decode(), self._err.read().decode(errors="replace")
        if code != 0:
            raise BrokerError(f"the traffic sender failed: {' '.join(err.split()[-40:])}")
        return Sent(**json.loads(out.strip().splitlines()[-1]))


def send(
    bootstrap: str, topic: str, rate: float, seconds: float, run: str, seed: int, watermark_delay_s: float
) -> Sent:
    """One run of a :class:`Sender`, waited for."""
    with Sender(bootstrap, topic, rate, seconds, run, seed, watermark_delay_s) as sender:
        return sender.result()


def freshness(client: WarehouseClient, run: str, sent: Sent) -> dict[str, Any]:
    """Per-event freshness of the events ``run`` sent (module docstring), read while the stack runs.

    Percentiles interpolate linearly between closest ranks (``quantilesExactInclusive``, numpy's default);
    ``stored_after_end_s`` is how long after the run's last send its last event became queryable.
    """
    fresh = window_freshness(client, run, sent.started, sent.ended + 1.0)
    last = fresh.pop("last_stored")
    return {**fresh, "stored_after_end_s": None if last is None else last - sent.ended}


def window_freshness(client: WarehouseClient, run: str, since: float, until: float) -> dict[str, Any]:
    """:func:`freshness` of the events of ``run`` due in [since, until) (epoch s), e.g. one minute of a soak;
    ``last_stored``: when the last of them became queryable."""
    query_id = client.query_rows(_QUERY_ID)[0][0]
    parameters = {"q": query_id, "since": int(since * 1000), "until": int(until * 1000), "run": f"{run}-%"}
    rows = client.query_rows(_STEP_FRESHNESS, parameters=parameters)
    if not rows:
        return {"events": 0, "p50_s": None, "p99_s": None, "max_s": None, "last_stored": None}
    values, counts = [int(r[0]) for r in rows], [int(r[1]) for r in rows]
    return {
        "events": sum(counts),
        "p50_s": exact_quantile(values, counts, 0.5) / 1000,
        "p99_s": exact_quantile(values, counts, 0.99) / 1000,
        "max_s": values[-1] / 1000,
        "last_stored": max(int(r[2]) for r in rows) / 1000,
    }


def exact_quantile(values: Sequence[int], counts: Sequence[int], q: float) -> float:
    """The ``q`` quantile of ``values`` (ascending, distinct) each repeated ``counts`` times, linear between the
    closest ranks: numpy's default and ClickHouse's ``quantileExactInclusive``."""
    ends = list(itertools.accumulate(counts))  # ends[i]: the sorted position just after values[i]'s copies
    rank = (ends[-1] - 1) * q
    low = math.floor(rank)
    below = values[bisect.bisect_right(ends, low)]
    above = values[bisect.bisect_right(ends, min(low + 1, ends[-1] - 1))]
    return below + (rank - low) * (above - below)


def main(argv: list[str] | None = None) -> None:
    """One run of the sender; prints what it sent as one JSON line (read by :func:`send`)."""
    parser = argparse.ArgumentParser(description="Offer realistic traffic open loop; print what was sent.")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--run", required=True, help="prefix of every user_id: what freshness() selects by")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--watermark-delay", type=float, default=30.0)
    parser.add_argument("--start-at", type=float, default=None, help="the schedule's start, epoch seconds")
    args = parser.parse_args(argv)
    sent = offer(
        args.bootstrap, args.topic, args.rate, args.seconds, args.run, args.seed, args.watermark_delay, args.start_at
    )
    print(json.dumps(asdict(sent)), flush=True)


if __name__ == "__main__":
    main()
