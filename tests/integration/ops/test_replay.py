"""``rtap dlq replay`` (the warehouse's dead letters back to their own topics) and the DLQ producer's back-pressure,
against the real broker and a real chDB warehouse."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa
import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from rtap.contract.model import LEGACY_FORMAT
from rtap.ingest.topics import ensure_topics
from rtap.kafka_clients import produce_waiting
from rtap.ops.cli import replay_lines
from rtap.ops.dead_letters import Filters
from rtap.ops.replay import replay_dead_letters
from rtap.settings import Settings, StreamSettings, WarehouseSettings
from rtap.warehouse import WarehouseClient, create_client
from rtap.warehouse.migrate import apply_migrations
from tests.support.seed import insert_events, purchase

NOW = datetime.now(UTC).replace(microsecond=0)
LIMIT = 1024  # the record size limit of these tests (RTAP_STREAM_MAX_RECORD_BYTES)
EVENT_TIME = datetime(2026, 11, 29, 10, tzinfo=UTC)


@pytest.fixture
def settings(
    kafka_settings: Settings, unique_name: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    kafka = kafka_settings.kafka.model_copy(
        update={
            "topic": unique_name("events"),
            "dlq_topic": unique_name("dlq"),
            "browser_topic": unique_name("browser"),
            "source_topics": {unique_name("legacy"): LEGACY_FORMAT},
        }
    )
    ensure_topics(kafka)
    return kafka_settings.model_copy(
        update={
            "kafka": kafka,
            "data_dir": tmp_path_factory.mktemp("rtap-replay"),
            "warehouse": WarehouseSettings(backend="chdb"),
            "stream": StreamSettings(max_record_bytes=LIMIT),
        }
    )


@pytest.fixture
def warehouse(settings: Settings) -> Iterator[WarehouseClient]:
    with create_client(settings) as owner:
        apply_migrations(owner)
        yield owner


def _event(n: int, **extra: Any) -> bytes:
    return orjson.dumps(
        {
            "event_id": str(uuid.UUID(int=n)),
            "event_type": "page_view",
            "event_time": "2026-11-29T10:00:00.000Z",
            "user_id": f"u{n}",
            "session_id": f"s{n}",
            "page_url": "/",
            **extra,
        }
    )


def _legacy(n: int, event_id: str | None = None) -> bytes:
    return orjson.dumps(
        {
            "event_id": event_id or str(uuid.UUID(int=n)),
            "user_id": f"u{n}",
            "page_url": "/old",
            "timestamp": "2026-11-29T10:00:00",
        }
    )


def _browser(n: int, event_id: str) -> bytes:
    """The tracker's format, created and sent at once: its event time is the collector's receive time."""
    return orjson.dumps(
        {
            "event_id": event_id,
            "type": "page_view",
            "created_at": "2026-11-29T10:00:00.000Z",
            "sent_at": "2026-11-29T10:00:00.000Z",
            "received_at": "2026-11-29T10:00:00.000Z",
            "anonymous_id": f"u{n}",
            "session_id": f"s{n}",
            "url": "http://127.0.0.1:8070/shop/",
            "site": "demo",
        }
    )


_COLUMNS = {
    "received_at": pa.timestamp("ms", tz="UTC"),
    "topic": pa.string(),
    "partition": pa.int32(),
    "offset": pa.int64(),
    "kafka_timestamp": pa.timestamp("ms", tz="UTC"),
    "error": pa.string(),
    "raw": pa.binary(),
    "batch_id": pa.int64(),
}


def insert_dead_letters(
    client: WarehouseClient, rows: list[tuple[str, bytes]], *, raw_size: list[int] | None = None
) -> None:
    """Dead letters as the job writes them: (topic, raw), offsets in order, received a minute ago."""
    at = NOW - timedelta(minutes=1)
    data: dict[str, list[Any]] = {
        "received_at": [at] * len(rows),
        "topic": [topic for topic, _ in rows],
        "partition": [0] * len(rows),
        "offset": list(range(len(rows))),
        "kafka_timestamp": [at] * len(rows),
        "error": ["invalid JSON"] * len(rows),
        "raw": [raw for _, raw in rows],
        "batch_id": [1] * len(rows),
    }
    table = pa.table({name: pa.array(data[name], kind) for name, kind in _COLUMNS.items()})
    if raw_size is not None:
        table = table.append_column("raw_size", pa.array(raw_size, pa.uint32()))
    client.insert_arrow("dead_letters", table)


def last_hour() -> Filters:
    return Filters(NOW - timedelta(hours=1), NOW + timedelta(seconds=1))


def _read_all(settings: Settings, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    kafka = settings.kafka
    consumer = Consumer({**kafka.client_config(), "group.id": f"rtap-test-{uuid.uuid4()}", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(kafka.partitions)])
        records = []
        while (message := consumer.poll(3.0)) is not None:
            assert message.error() is None, message.error()
            records.append((message.key(), message.value()))
        return records
    finally:
        consumer.close()


def test_produce_waiting_rides_out_a_full_local_queue(settings: Settings) -> None:
    kafka = settings.kafka
    # Room for 5 records: producing 200 without waiting would raise BufferError after the fifth.
    producer = Producer({**kafka.client_config(), "queue.buffering.max.messages": 5, "linger.ms": 50})
    errors: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, _message: Any) -> None:
        if error is not None:
            errors.append(error)

    for n in range(200):
        produce_waiting(producer, kafka.dlq_topic, key=f"k{n}".encode(), value=_event(n), on_delivery=on_delivery)
    assert producer.flush(30) == 0
    assert errors == []
    assert len(_read_all(settings, kafka.dlq_topic)) == 200


def test_each_dead_letter_goes_back_to_its_own_topic_checked_against_its_own_format(
    settings: Settings, warehouse: WarehouseClient
) -> None:
    # A warehouse migrated before 0010: no raw_size, every payload stored whole (its length is its size).
    warehouse.command("ALTER TABLE {db}.dead_letters DROP COLUMN IF EXISTS raw_size")
    v1, (legacy,) = settings.kafka.topic, settings.kafka.source_topics
    fixed = [(v1, _event(n)) for n in range(5)]
    fixed_legacy = [(legacy, _legacy(n)) for n in range(10, 13)]
    stored = [(v1, _event(20))]  # passed the job through another copy: replaying it again would only count a duplicate
    insert_events(warehouse, [{**purchase(EVENT_TIME, "u20", "p1", "1.00", 1, 1), "event_id": str(uuid.UUID(int=20))}])
    rows = [
        *fixed,
        *fixed_legacy,
        *stored,
        (legacy, _event(30)),  # contract v1 on the previous system's topic: not its format
        (v1, _legacy(31)),  # and the other way round
        (v1, b"{not json"),
        ("retired.events", _event(32)),  # a topic the job no longer reads
        (v1, _event(33, page_url="/" + "x" * LIMIT)),  # valid, but over the record size limit: never republished
    ]
    insert_dead_letters(warehouse, rows)

    dry = replay_dead_letters(warehouse, settings, last_hour(), dry_run=True)
    assert (dry.read, dry.replayed_total) == (len(rows), 8)
    assert _read_all(settings, v1) == []  # a dry run publishes nothing

    report = replay_dead_letters(warehouse, settings, last_hour())
    assert report.read == len(rows)
    assert report.replayed == {v1: 5, legacy: 3}
    assert report.already_stored == 1
    assert sum(report.still_invalid.values()) == 3
    assert report.not_input_topic == {"retired.events": 1}
    assert report.too_large == 1
    assert report.truncated == 0
    # Keyed by the session (contract v1's key), bytes as stored, each on the topic it came from.
    assert sorted(_read_all(settings, v1)) == sorted((f"s{n}".encode(), raw) for n, (_, raw) in enumerate(fixed))
    assert sorted(value or b"" for _, value in _read_all(settings, legacy)) == sorted(raw for _, raw in fixed_legacy)


def test_an_event_stored_under_another_spelling_of_its_id_is_already_stored_in_every_format(
    settings: Settings, warehouse: WarehouseClient
) -> None:
    """A UUID is one id in any letter case (issue 22): the job stores it in lower case, a dead letter keeps it as
    the producer wrote it (Swift's UUID().uuidString is upper case), and replaying it must find the stored copy."""
    ids = {n: str(uuid.UUID(int=0xFEEDFACE << 96 | n)) for n in (50, 51, 52)}  # letters to spell both ways
    insert_events(
        warehouse,
        [{**purchase(EVENT_TIME, f"u{n}", "p1", "1.00", 1, n), "event_id": event_id} for n, event_id in ids.items()],
    )
    (legacy,) = settings.kafka.source_topics
    rows = [
        (settings.kafka.topic, _event(50, event_id=ids[50].upper())),
        (legacy, _legacy(51, ids[51].upper())),
        (settings.kafka.browser_topic, _browser(52, ids[52][:8].upper() + ids[52][8:])),
    ]
    insert_dead_letters(warehouse, rows)
    report = replay_dead_letters(warehouse, settings, last_hour())
    assert (report.already_stored, report.replayed_total, dict(report.still_invalid)) == (3, 0, {})
    assert [_read_all(settings, topic) for topic, _ in rows] == [[], [], []]


def test_a_truncated_dead_letter_is_reported_never_replayed(settings: Settings, warehouse: WarehouseClient) -> None:
    """After migration 0010 the table keeps at most the record size limit of a payload, and the payload's size."""
    v1 = settings.kafka.topic
    whole = _event(40, page_url="/" + "x" * 3 * LIMIT)
    rows = [(v1, _event(41)), (v1, whole[:LIMIT]), (v1, _event(42, page_url="/" + "y" * LIMIT))]
    insert_dead_letters(warehouse, rows, raw_size=[len(rows[0][1]), len(whole), len(rows[2][1])])
    report = replay_dead_letters(warehouse, settings, last_hour())
    assert (report.replayed, report.truncated, report.too_large) == ({v1: 1}, 1, 1)
    lines = replay_lines(report, last_hour(), dry_run=False, limit=LIMIT)
    assert lines[0].endswith(f"; replayed 1 (1 to {v1})")
    assert "        1  truncated, not replayable (the warehouse keeps only the start of the payload)" in lines
    assert "        1  larger than the record size limit (1,024 bytes), not replayable" in lines
    assert [value for _, value in _read_all(settings, v1)] == [rows[0][1]]


def test_replay_judges_as_the_job_does_a_time_it_would_refuse_and_a_framed_payload(
    settings: Settings, warehouse: WarehouseClient
) -> None:
    """A dead letter the job would refuse again (its event time beyond the record's time + the allowed skew) is
    reported with the job's reason, never re-sent to fail again; one written in Schema Registry's wire format
    (a header whose schema id has bytes over 0x7f, then JSON) is judged after its header, as the job reads it."""
    v1 = settings.kafka.topic
    far = _event(60, event_time="9999-12-31T23:59:59.999Z")
    framed = b"\x00\x00\x01\x86\xca" + _event(61)  # schema id 100042
    insert_dead_letters(warehouse, [(v1, far), (v1, framed)])
    report = replay_dead_letters(warehouse, settings, last_hour())
    assert report.replayed == {v1: 1}
    ((reason, count),) = report.still_invalid.items()  # the job's own reason
    assert count == 1
    assert reason.startswith("event_time: outside 1970-01-01 .. record timestamp + ")
    assert [value for _, value in _read_all(settings, v1)] == [framed]  # bytes as stored, header included


def test_already_stored_means_a_copy_within_the_jobs_minute_rule(
    settings: Settings, warehouse: WarehouseClient
) -> None:
    """The job counts a record as a copy of a stored event of its id only in its minute or one on either side;
    replay decides "already stored" by the same rule, whatever else shares the page."""
    v1 = settings.kafka.topic
    far, near = str(uuid.UUID(int=70)), str(uuid.UUID(int=71))
    insert_events(
        warehouse,
        [
            {**purchase(EVENT_TIME + timedelta(minutes=20), "u70", "p1", "1.00", 1, 70), "event_id": far},
            {**purchase(EVENT_TIME + timedelta(seconds=40), "u71", "p1", "1.00", 1, 71), "event_id": near},
        ],
    )
    rows = [
        (v1, _event(70, event_id=far)),  # 10:00, its id stored at 10:20: another event, which the job would store
        (v1, _event(71, event_id=near)),  # 10:00, its id stored at 10:00:40: a copy
        (v1, _event(72, event_time="2026-11-29T10:30:00.000Z")),  # widens the page's span past both
    ]
    insert_dead_letters(warehouse, rows)
    report = replay_dead_letters(warehouse, settings, last_hour())
    assert (report.replayed, report.already_stored) == ({v1: 2}, 1)
    assert sorted(value or b"" for _, value in _read_all(settings, v1)) == sorted([rows[0][1], rows[2][1]])
