"""Freshness of a running rtap, measured from outside: a plain producer, the warehouse's own commit times.

    .venv/bin/python -m bench.outside --bootstrap 127.0.0.1:9092 --rates 1000,10000,50000 [--step-seconds 20]

Nothing of rtap's producer or benchmark harness is used on the sending side: a confluent-kafka producer
offers traffic open-loop at each rate (each event stamped with its intended send time, so a producer that
falls behind shows as staleness, not as a lower rate), like a team's own producer would:

- valid contract-v1 events (page views, product views, carts, purchases) keyed by session;
- ~1% exact re-sends (duplicates), ~0.5% truncated JSON, ~0.3% events two minutes late.

Per-event freshness = ``pipeline_batches.finished_at`` of the batch that stored the event, minus its
``event_time``: every row of a batch is written before its commit record, whose ``finished_at`` is taken just
before that last write, so a reader sees the event at most this late.
Read through ``rtap sql``'s read-only path while the stack runs. Results: JSON on stdout and, with
``--out``, a file.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Producer

from rtap.settings import Settings

PAGES = [f"https://shop.example/p/{i}" for i in range(200)]
TYPES = ["page_view"] * 60 + ["product_view"] * 25 + ["add_to_cart"] * 8 + ["checkout"] * 4 + ["purchase"] * 3
_STEP_FRESHNESS = """
SELECT count(), quantileExact(0.5)(f), quantileExact(0.99)(f), max(f)
FROM (
    SELECT (toUnixTimestamp64Milli(b.finished_at) - toUnixTimestamp64Milli(e.event_time)) / 1000 AS f
    FROM {db}.events AS e
    INNER JOIN (SELECT batch_id, finished_at FROM {db}.pipeline_batches FINAL WHERE query_id = {q:String}) AS b
        ON e.batch_id = b.batch_id
    WHERE e.event_time >= fromUnixTimestamp64Milli({since:Int64})
      AND e.event_time < fromUnixTimestamp64Milli({until:Int64}) AND e.user_id LIKE {run:String}
)
"""
_QUERY_ID = "SELECT argMax(query_id, finished_at) FROM {db}.pipeline_batches FINAL"


def _event(moment: datetime, session: str, run: str, rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(TYPES)
    event: dict[str, Any] = {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "event_type": kind,
        "event_time": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
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
    return event


_TIME_MARK = b"1970-01-01T00:00:00.000Z"  # the event_time placeholder of a prepared payload: 24 bytes


def _prepared(count: int, run: str, rng: random.Random, sessions: list[str]) -> list[tuple[bytes, bytes, bytes]]:
    """(key, payload before event_time, payload after) for ``count`` sends, with the step's dirt mixed in.

    Prepared before the clock starts, so that sending costs a concatenation: a Python sender that builds each
    event as it goes cannot offer 40,000 events/s beside the stack on two cores (it fell 11 s behind).
    """
    out: list[tuple[bytes, bytes, bytes]] = []
    epoch = datetime.fromtimestamp(0, UTC)
    for _ in range(count):
        session = rng.choice(sessions)
        roll = rng.random()
        if roll < 0.01 and out:
            out.append((out[-1][0], b"DUP", b""))  # an exact re-send of the previous event's bytes
            continue
        value = json.dumps(_event(epoch, session, run, rng)).encode()
        head, tail = value.split(_TIME_MARK)
        if roll < 0.013:
            head = b"LATE" + head  # marked: stamped two minutes before its send time
        elif roll < 0.018:
            tail = tail[: len(tail) // 2] + b"TRUNCATED"  # marked: cut in the middle of the JSON
        out.append((session.encode(), head, tail))
    return out


def offer(bootstrap: str, topic: str, rate: float, seconds: float, run: str, seed: int) -> dict[str, Any]:
    """Send ``rate`` events/s for ``seconds``, open loop; what was sent, and how far the sender fell behind."""
    rng = random.Random(seed)
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 5, "compression.type": "lz4", "acks": "all",
         "queue.buffering.max.messages": 1_000_000}
    )  # fmt: skip
    failed: list[str] = []
    sessions = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(2000)]
    count = int(rate * seconds)
    plan = _prepared(count, run, rng, sessions)
    truncated = sum(1 for _, _, tail in plan if tail.endswith(b"TRUNCATED"))
    stamps: dict[int, bytes] = {}
    start = time.time()
    behind = 0.0
    previous = b""
    for i, (key, head, tail) in enumerate(plan):
        due = start + i / rate
        now = time.time()
        if due > now:
            time.sleep(due - now)
        behind = max(behind, time.time() - due)
        if head == b"DUP":
            value = previous
        else:
            late = head.startswith(b"LATE")
            millis = int(due * 1000) - (120_000 if late else 0)
            if (stamp := stamps.get(millis)) is None:
                moment = datetime.fromtimestamp(millis / 1000, UTC)
                stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.").encode() + b"%03dZ" % (millis % 1000)
                stamps = {millis: stamp}
            value = previous = (head[4:] if late else head) + stamp + tail.removesuffix(b"TRUNCATED")
        while True:
            try:
                producer.produce(topic, value, key=key, on_delivery=_failures(failed))
                break
            except BufferError:
                producer.poll(0.05)
        if i % 1000 == 0:
            producer.poll(0)
    producer.flush(60)
    return {"rate": rate, "sent": count, "truncated": truncated, "failed": len(failed),
            "started": start, "ended": time.time(), "producer_max_behind_s": round(behind, 3)}  # fmt: skip


def _failures(into: list[str]) -> Any:
    def record(error: Any, _message: Any) -> None:
        if error is not None:
            into.append(str(error))

    return record


def freshness(settings: Settings, run: str, since: float, until: float) -> dict[str, Any]:
    from rtap.warehouse import create_client

    with create_client(settings, readonly=True) as client:
        query_id = client.query_rows(_QUERY_ID)[0][0]
        n, p50, p99, worst = client.query_rows(
            _STEP_FRESHNESS,
            parameters={"q": query_id, "since": int(since * 1000), "until": int(until * 1000), "run": f"{run}-%"},
        )[0]
    return {"events": int(n), "p50_s": p50, "p99_s": p99, "max_s": worst}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default=None, help="default: RTAP_KAFKA_BOOTSTRAP_SERVERS")
    parser.add_argument("--rates", default="1000,10000", help="events/s per step, comma-separated")
    parser.add_argument("--step-seconds", type=float, default=20.0)
    parser.add_argument("--settle-seconds", type=float, default=15.0, help="wait after a step before reading")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    settings = Settings()
    bootstrap = args.bootstrap or settings.kafka.bootstrap_servers
    steps = []
    for n, rate in enumerate(float(r) for r in args.rates.split(",")):
        run = f"out{uuid.uuid4().hex[:6]}"
        sent = offer(bootstrap, settings.kafka.topic, rate, args.step_seconds, run, seed=n)
        time.sleep(args.settle_seconds)
        fresh = freshness(settings, run, sent["started"], sent["ended"] + 1)
        steps.append({**sent, "freshness": fresh})
        print(json.dumps(steps[-1]), file=sys.stderr, flush=True)
    report = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "command": " ".join(sys.argv), "steps": steps}
    print(json.dumps(report, indent=2))
    if args.out:
        with open(args.out, "w") as out:
            json.dump(report, out, indent=2)


if __name__ == "__main__":
    main()
