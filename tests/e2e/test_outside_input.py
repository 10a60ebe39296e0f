"""Traffic written outside rtap, as a new user sends it, is exact (issue #22): the job never stops or restarts.

A plain confluent-kafka producer written here, not rtap's generator (which only makes what the code expects),
sends the issue's measured cases against the real stream job on a real broker:

1. hostile records between valid ones: a 1,040,000-byte JSON object (the broker accepts it), a 900,000-byte
   blob that is no JSON, a 200,000-byte array nested 100,000 deep, and one nested 20,000 deep within the size
   limit: each a dead letter with its reason and size, the valid ones all stored;
2. event ids in upper case, re-sent verbatim once stored, then in lower case, then both spellings in one batch;
   and events stamped again when resent (a copy 30 s later, one 3 minutes later), all in one burst and across
   batches: the same count either way, in events as in the windows; and stored views re-sent verbatim once their
   partition has moved on (a producer replaying after an outage): duplicates, not late events;
3. one key (one partition): on-time views, one view whose clock is 50 minutes fast, then more on-time views;
4. a transactional producer (as Flink's and Kafka Streams' exactly-once sinks write): a committed transaction, an
   aborted one, and one left open while the job runs, then aborted. Only the committed records are events, and
   the markers that end transactions are neither lag nor a stall once the job has read past them;
5. views serialized by Confluent's JSON Schema serializer (confluent-kafka's, with its in-memory registry, run in
   its own virtualenv: tests/support/confluent_json.py), which puts Schema Registry's header before the JSON: each
   an event;
6. partitions added to the topic (as an operator grows it for throughput): the running job reads them from their
   start, and the job starts again on the grown topic, whose count no longer matches ``RTAP_KAFKA_PARTITIONS``;
7. the topic deleted and created again while the job is stopped, then written past every offset the warehouse read
   (so that only the topic's id tells the two logs apart): the job refuses to start, in one line, and writes
   nothing.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewPartitions

from rtap.errors import BrokerError
from rtap.ingest.topics import ensure_topics
from rtap.kafka_admin import topic_ids
from rtap.stream.gaps import resume_positions
from rtap.stream.restarts import JOB_STATE_FILE
from rtap.warehouse import create_client
from tests.support.confluent_json import serialized
from tests.support.pipeline import StreamProcess, pipeline_settings

pytestmark = pytest.mark.timeout(900)


# The JSON Schema a team would register for the views below (Confluent's serializer checks each against it).
VIEW_SCHEMA = {
    "type": "object",
    "properties": {
        "event_id": {"type": "string"},
        "event_type": {"type": "string"},
        "event_time": {"type": "string", "format": "date-time"},
        "user_id": {"type": "string"},
        "session_id": {"type": "string"},
        "page_url": {"type": "string"},
    },
    "required": ["event_id", "event_type", "event_time"],
}


def now() -> datetime:
    return datetime.now(UTC)


def view(event_id: str, *, session: str, at: datetime | None = None) -> bytes:
    moment = (at or now()).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return orjson.dumps(
        {
            "event_id": event_id,
            "event_type": "page_view",
            "event_time": moment,
            "user_id": f"user-{session}",
            "session_id": session,
            "page_url": "https://shop.example/",
        }
    )


def send(producer: Producer, topic: str, records: list[tuple[str, bytes]], partition: int = -1) -> None:
    """``records`` (key, value) acknowledged by the broker; to ``partition``, or by key (-1, the client's default)."""
    failures: list[KafkaError] = []

    def delivered(error: KafkaError | None, _message: object) -> None:
        if error is not None:
            failures.append(error)

    for key, value in records:
        producer.produce(topic, key=key.encode(), value=value, partition=partition, on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(60) == 0
    assert failures == []


def test_outside_traffic_is_exact_and_never_stops_the_job(broker, tmp_path) -> None:
    settings = pipeline_settings(broker, tmp_path, "outside")
    ensure_topics(settings.kafka)
    topic = settings.kafka.topic
    producer = Producer(
        {"bootstrap.servers": settings.kafka.bootstrap_servers, "message.max.bytes": 1_048_576, "linger.ms": 5}
    )
    job = StreamProcess(settings)
    sent = 0

    # 1. Hostile records between valid ones.
    valid = [(f"s{i % 50}", view(str(uuid.uuid4()), session=f"s{i % 50}")) for i in range(2_000)]
    big_object = b'{"event_id": "' + b"x" * 1_039_984 + b'"}'
    hostile = [
        ("h1", big_object),
        ("h2", bytes(range(256)) * 3_515 + b"\x00" * 160),
        ("h3", b"[" * 100_000 + b"]" * 100_000),
        ("h4", b"[" * 20_000 + b"]" * 20_000),
    ]
    assert [len(v) for _, v in hostile] == [1_040_000, 900_000, 200_000, 40_000]
    send(producer, topic, valid[:1_000] + hostile + valid[1_000:])
    sent += 2_000 + len(hostile)
    job.wait_processed(sent)

    # 2. Ids in any letter case: 300 upper, stored; the same again; lower case; 200 new in both spellings at once.
    ids = [str(uuid.uuid4()) for _ in range(500)]
    at = now()
    upper = [("case", view(i.upper(), session="case", at=at)) for i in ids[:300]]
    send(producer, topic, upper)
    job.wait_processed(sent := sent + 300)
    send(producer, topic, upper)
    job.wait_processed(sent := sent + 300)
    send(producer, topic, [("case", view(i, session="case", at=at)) for i in ids[:300]])
    job.wait_processed(sent := sent + 300)
    both = [("case", view(spelling, session="case", at=at)) for i in ids[300:] for spelling in (i.upper(), i)]
    send(producer, topic, both)
    job.wait_processed(sent := sent + 400)
    restamped = [str(uuid.uuid4()) for _ in range(200)]

    def stamped(event_ids: list[str], at: datetime, seconds: tuple[int, ...]) -> list[tuple[str, bytes]]:
        return [
            ("restamp", view(i, session="restamp", at=at + timedelta(seconds=t))) for i in event_ids for t in seconds
        ]

    send(producer, topic, stamped(restamped[:100], now(), (0, 30, 180)))  # 30 s: a duplicate; 3 min: another event
    job.wait_processed(sent := sent + 300)
    at = now()
    for seconds in ((0, 30), (180,)):  # the same, across batches
        send(producer, topic, stamped(restamped[100:], at, seconds))
        job.wait_processed(sent := sent + 100 * len(seconds))
    stamp = now() - timedelta(seconds=20)  # on time; behind the watermark once the partition is 10 s further on
    replayed = [("replay", view(str(uuid.uuid4()), session="replay", at=stamp)) for _ in range(100)]
    send(producer, topic, replayed, partition=3)
    job.wait_processed(sent := sent + 100)
    replay_after = time.monotonic() + 15  # cases 3 to 5 run meanwhile

    # 3. One partition: 200 on time, one from a clock 50 minutes fast, 800 on time.
    clock = [("clock", view(str(uuid.uuid4()), session="clock")) for _ in range(200)]
    clock.append(("clock", view(str(uuid.uuid4()), session="clock", at=now() + timedelta(minutes=50))))
    send(producer, topic, clock)
    send(producer, topic, [("clock", view(str(uuid.uuid4()), session="clock")) for _ in range(800)])
    job.wait_processed(sent := sent + 1_001)

    # 4. Transactions on partition 0: 300 views committed, 200 aborted, 100 left open while the job runs on, then
    # aborted; then 100 plain views on partition 1.
    transactional = Producer(
        {"bootstrap.servers": settings.kafka.bootstrap_servers, "transactional.id": f"outside-{uuid.uuid4()}"}
    )
    transactional.init_transactions(30)
    for count, outcome in ((300, "commit"), (200, "abort"), (100, "stay open, then abort")):
        transactional.begin_transaction()
        for _ in range(count):
            transactional.produce(topic, view(str(uuid.uuid4()), session="txn"), key=b"txn", partition=0)
        transactional.flush(30)  # in the log, whatever becomes of the transaction
        if outcome == "commit":
            transactional.commit_transaction(30)
            job.wait_processed(sent := sent + count)
            continue
        if outcome != "abort":
            time.sleep(3)  # the job's batches go on while the transaction stays open
        transactional.abort_transaction(30)
    send(producer, topic, [("plain", view(str(uuid.uuid4()), session="plain")) for _ in range(100)], partition=1)
    job.wait_processed(sent := sent + 100)

    # 5. Views serialized by Confluent's JSON Schema serializer.
    documents = [orjson.loads(view(str(uuid.uuid4()), session="registry")) for _ in range(200)]
    framed = serialized(topic, VIEW_SCHEMA, documents)
    assert all(value.startswith(b"\x00") for value in framed)  # the registry's header, then the document
    send(producer, topic, [("registry", value) for value in framed])
    job.wait_processed(sent := sent + 200)

    # 2, the replay: the partition moves on, then the stored views again, byte for byte.
    time.sleep(max(0.0, replay_after - time.monotonic()))
    send(producer, topic, [("replay", view(str(uuid.uuid4()), session="replay")), *replayed], partition=3)
    job.wait_processed(sent := sent + 101)

    # 6. Two partitions more while the job runs, 100 views to each; then a restart on the grown topic, 100 more.
    grown = settings.kafka.partitions + 2
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    admin.create_partitions([NewPartitions(topic, grown)])[topic].result(30)
    for _ in range(100):  # until the producer's metadata has them (it refuses an unknown partition)
        if len(producer.list_topics(topic, timeout=10).topics[topic].partitions) == grown:
            break
        time.sleep(0.1)
    for partition in range(grown - 2, grown):
        send(producer, topic, [("grown", view(str(uuid.uuid4()), session="grown")) for _ in range(100)], partition)
    job.wait_processed(sent := sent + 200)
    state = json.loads((settings.paths.run / JOB_STATE_FILE).read_text())
    assert job.stop() == 0
    assert state["restarts"] == 0, state
    job = StreamProcess(settings)
    send(producer, topic, [("grown", view(str(uuid.uuid4()), session="grown")) for _ in range(100)], grown - 1)
    job.wait_processed(sent := sent + 100)
    assert job.stop() == 0

    # 7. The topic created again with as many partitions, and written past every position the warehouse read in it.
    def current_id() -> str | None:
        with contextlib.suppress(BrokerError):  # no such topic: the deletion is under way
            return topic_ids(admin, [topic], timeout_s=5)[topic]
        return None

    old_id = current_id()
    admin.delete_topics([topic])[topic].result(30)
    deadline = time.monotonic() + 60
    while current_id() in (None, old_id) and time.monotonic() < deadline:
        with contextlib.suppress(BrokerError):  # the old one is still being deleted
            ensure_topics(settings.kafka.model_copy(update={"partitions": grown}))
        time.sleep(0.2)
    with create_client(settings) as client:
        read = resume_positions(client, settings.kafka, topic)
    assert sorted(read) == list(range(grown))
    again = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "linger.ms": 5})
    for partition, position in read.items():
        send(
            again, topic, [("again", view(str(uuid.uuid4()), session="again")) for _ in range(position + 1)], partition
        )
    job = StreamProcess(settings)
    assert job.process.wait(timeout=300) == 1
    refused = job.log_tail(5)
    assert f"topic {topic} is not the log this warehouse read (Kafka gives it id " in refused, refused

    with create_client(settings) as client:
        events, duplicates, late, views = client.query_rows(
            "SELECT (SELECT count() FROM {db}.events FINAL), (SELECT sum(duplicates) FROM {db}.pipeline_batches FINAL),"
            " (SELECT count() FROM {db}.late_events), (SELECT sum(views) FROM {db}.page_views_1m FINAL)"
        )[0]
        dead = client.query_rows(
            "SELECT raw_size, length(raw), error FROM {db}.dead_letters ORDER BY `partition`, `offset`"
        )
        stored_case = client.query_rows(
            "SELECT toString(event_id) FROM {db}.events FINAL WHERE session_id = 'case' ORDER BY 1"
        )
        by_session = dict(
            client.query_rows(
                "SELECT session_id, count() FROM {db}.events FINAL"
                " WHERE session_id IN ('txn', 'plain', 'grown', 'registry', 'restamp', 'replay') GROUP BY 1"
            )
        )
        (last_lag,) = client.query_rows("SELECT argMax(kafka_lag, batch_id) FROM {db}.pipeline_batches FINAL")[0]

    # Every valid view once (the fast one is a dead letter); of the transactions, the committed one only.
    assert events == views == 2_000 + 500 + 400 + 101 + 1_000 + 300 + 100 + 200 + 300
    assert by_session == {"txn": 300, "plain": 100, "grown": 300, "registry": 200, "restamp": 400, "replay": 101}
    assert last_lag == 0  # the three transaction markers on partition 0 are behind the job, not ahead of it
    assert duplicates == 300 + 300 + 200 + 200 + 100
    assert late == 0  # the fast clock made no honest view late, and a replay is duplicates
    assert [r[0] for r in stored_case] == sorted(ids)
    reasons = sorted((size, kept, error.split(":")[0]) for size, kept, error in dead)
    limit = settings.stream.max_record_bytes
    assert reasons == sorted(
        [
            (1_040_000, limit, "record too large"),
            (900_000, limit, "record too large"),
            (200_000, limit, "record too large"),
            (40_000, 40_000, "invalid JSON (depth limit exceeded"),
            (len(clock[-1][1]), len(clock[-1][1]), "event_time"),
        ]
    ), dead

    # The dead-letter topic has every one of them, cut to the same bound, with its real size in a header.
    consumer = Consumer(
        {"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": "check", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([settings.kafka.dlq_topic])
    sizes = []
    for _ in range(120):
        message = consumer.poll(1.0)
        if message is not None and message.error() is None:
            assert len(message.value() or b"") <= limit
            size = dict(message.headers() or [])["rtap.source.size"]
            assert isinstance(size, bytes)
            sizes.append(int(size))
        if len(sizes) == len(dead):
            break
    consumer.close()
    assert sorted(sizes) == sorted(size for size, _, _ in dead)
