"""The previous system's producer, unchanged, against rtap: its events land exactly (issue #15, part 2).

A producer built like that system's own: kafka-python, a dict per click serialised with ``json.dumps``, no
message key, ``datetime.utcnow().isoformat()`` as the timestamp, a fresh user per click. rtap's job reads its
topic (source format ``legacy-click.v1``) beside its own, and every click must be in ``events``, in the
previous system's table ``clickstream_aggregates`` (per page per minute) and in the sessions; its broken
records in ``dead_letters`` with their reason and topic; a click sent twice counted once.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest
from kafka import KafkaProducer  # type: ignore[import-untyped]  # kafka-python ships no type hints

from rtap.contract.formats import legacy_session_id, parse_legacy_timestamp
from rtap.contract.model import LEGACY_FORMAT
from rtap.ingest.topics import ensure_topics
from rtap.warehouse import create_client
from tests.support.pipeline import StreamProcess, pipeline_settings

pytestmark = pytest.mark.timeout(900)

PAGES = [
    "http://www.e-commerce-example.com/",
    "http://www.e-commerce-example.com/produtos/eletronicos",
    "http://www.e-commerce-example.com/produtos/livros",
    "http://www.e-commerce-example.com/carrinho",
]
AGENTS = ["Mozilla/5.0 (Windows NT 10.0; Win64; x64)", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)"]
CLICKS = 3_000


def click(rng: random.Random, *, whole_second: bool = False) -> dict[str, str]:
    """One event as the previous producer built it."""
    now = datetime.utcnow()  # what that producer called: UTC without an offset
    if whole_second:  # isoformat() then has no fraction at all
        now = now.replace(microsecond=0)
    return {
        "event_id": str(uuid.uuid4()),
        "user_id": str(uuid.uuid4()),
        "page_url": rng.choice(PAGES),
        "ip_address": ".".join(str(rng.randint(1, 254)) for _ in range(4)),
        "user_agent": rng.choice(AGENTS),
        "timestamp": now.isoformat(),
    }


def test_the_previous_producers_events_land_exactly(broker, tmp_path) -> None:
    # The previous system's topic by its own name (its producers write there); this module has a broker of its own.
    settings = pipeline_settings(broker, tmp_path, "previous")
    kafka = settings.kafka.model_copy(update={"source_topics": {"clickstream_events": LEGACY_FORMAT}})
    settings = settings.model_copy(update={"kafka": kafka})
    (legacy_topic,) = settings.kafka.source_topics
    ensure_topics(settings.kafka)
    rng = random.Random(15)
    sent = [click(rng, whole_second=i % 10 == 0) for i in range(CLICKS)]
    broken = [
        b'{"event_id": "not json',
        json.dumps({**sent[0], "event_id": str(uuid.uuid4()), "timestamp": None}).encode(),
    ]
    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, value_serializer=None)
    for event in sent:
        producer.send(legacy_topic, value=json.dumps(event).encode("utf-8"))
    producer.send(legacy_topic, value=json.dumps(sent[1]).encode("utf-8"))  # a retry: the same click again
    for payload in broken:
        producer.send(legacy_topic, value=payload)
    producer.flush(timeout=60)
    producer.close()
    assert any("." not in e["timestamp"] for e in sent)
    assert any("." in e["timestamp"] for e in sent)

    job = StreamProcess(settings)
    job.wait_processed(len(sent) + 1 + len(broken))
    assert job.stop() == 0

    with create_client(settings) as client:
        stored = client.query_rows(
            "SELECT toString(event_id), event_type, session_id, kafka_topic FROM {db}.events FINAL"
        )
        windows = client.query_rows(
            "SELECT toUnixTimestamp(window_start), toUnixTimestamp(window_end), page_url, click_count"
            " FROM real_time_analytics.clickstream_aggregates"
        )
        dead = client.query_rows("SELECT topic, error FROM {db}.dead_letters ORDER BY `offset`")
        duplicates, sessions = client.query_rows(
            "SELECT (SELECT sum(duplicates) FROM {db}.pipeline_batches FINAL),"
            " (SELECT count() FROM {db}.sessions FINAL)"
        )[0]

    assert sorted(e for e, *_ in stored) == sorted(e["event_id"] for e in sent)
    assert {(t, k) for _, t, _, k in stored} == {("page_view", legacy_topic)}
    expected_sessions = {e["event_id"]: legacy_session_id(e["user_id"], _moment(e)) for e in sent}
    assert {e: s for e, _, s, _ in stored} == expected_sessions
    assert sessions == len(set(expected_sessions.values())) == CLICKS  # a fresh user per click
    assert duplicates == 1

    per_window = Counter((int(_moment(e).timestamp()) // 60 * 60, e["page_url"]) for e in sent)
    assert {(start, page): count for start, _, page, count in windows} == per_window
    assert all(end - start == 60 for start, end, _, _ in windows)

    # No key: the two broken records went to partitions of the producer's choosing, in no order to rely on.
    assert [topic for topic, _ in dead] == [legacy_topic, legacy_topic]
    reasons = sorted(error for _, error in dead)
    assert reasons[0].startswith("invalid JSON")
    assert reasons[1] == "timestamp: required field missing or null"


def _moment(event: dict[str, str]) -> datetime:
    moment = parse_legacy_timestamp(event["timestamp"])
    assert moment is not None
    assert moment.tzinfo is UTC
    return moment
