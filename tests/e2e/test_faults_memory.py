"""A batch too large for the driver, of valid events only: the job plans it again smaller until it fits.

Valid contract-v1 events as large as the contract lets them be (every string at its maxLength, of 4-byte
characters: about 40 KB each), sent by a plain confluent-kafka producer before the job starts, are one backlog
whose first batch the job plans by the size of records it has seen (none: 1 KiB each). With a 512 MiB driver that
batch runs Spark's JVM out of memory. Before rtap.stream.caps every restart replayed the same planned range and the
job stopped after five; now each failure for want of memory plans the batch again a quarter as large, the job never
stops, and every event is stored once. The batch that fits makes the smaller cap a budget of bytes: when ordinary
events follow, the cap grows again within it, and they are stored once too.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import orjson
import pytest
from confluent_kafka import Producer

from rtap.ingest.topics import ensure_topics
from rtap.warehouse import create_client
from tests.support.pipeline import StreamProcess, pipeline_settings

pytestmark = pytest.mark.timeout(900)

EVENTS = 8_000
SMALL_EVENTS = 20_000
SMALLER = re.compile(r"ran out of memory: it is planned again, at most ([\d,]+) records")
LIFTED = re.compile(r"the last batches' record sizes call for ([\d,]+) records")


def fat_view(index: int, at: str) -> bytes:
    """A valid page view with every string of the contract at its maxLength, in 4-byte UTF-8 characters."""
    big = "\U0001f600"
    event = {
        "event_id": str(uuid.uuid4()),
        "event_type": "page_view",
        "event_time": at,
        "user_id": big * 256,
        "session_id": big * 250 + f"{index % 64:06d}",
        "page_url": big * 4096,
        "referrer": big * 4096,
        "user_agent": big * 1024,
        "category": big * 256,
        "schema_version": 1,
    }
    return orjson.dumps(event)


def small_view(index: int, at: str) -> bytes:
    """An ordinary page view, about 300 bytes."""
    event = {
        "event_id": str(uuid.uuid4()),
        "event_type": "page_view",
        "event_time": at,
        "user_id": f"u{index % 500}",
        "session_id": f"s{index % 64}",
        "page_url": f"https://shop.example/p/{index % 100}",
        "schema_version": 1,
    }
    return orjson.dumps(event)


def number(text: str) -> int:
    return int(text.replace(",", ""))


def test_a_batch_too_large_for_the_driver_is_planned_again_smaller_until_it_fits(
    broker, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RTAP_STREAM_DRIVER_MEMORY", "512m")  # the job's child process inherits it
    settings = pipeline_settings(broker, tmp_path, "memory")
    ensure_topics(settings.kafka)
    producer = Producer(
        {"bootstrap.servers": settings.kafka.bootstrap_servers, "compression.type": "lz4", "linger.ms": 20}
    )
    at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    sizes = set()
    for index in range(EVENTS):
        value = fat_view(index, at)
        sizes.add(len(value))
        producer.produce(settings.kafka.topic, value, key=str(index % 64).encode())
        if index % 1_000 == 999:
            producer.flush(60)
    assert producer.flush(60) == 0
    assert min(sizes) > 40_000  # 8,000 of them: ~320 MB, in a 512 MiB driver

    job = StreamProcess(settings)
    job.wait_processed(EVENTS)
    log = (settings.data_dir / "stream.log").read_text(errors="replace")
    shrinks = [line for line in log.splitlines() if SMALLER.search(line)]
    print("\n".join(shrinks))
    assert shrinks, job.log_tail(60)
    assert f"batch 0 of {EVENTS:,} records ran out of memory" in shrinks[0]  # where Spark started the query: counted
    limit = number(SMALLER.findall(shrinks[-1])[0])

    # Ordinary events after them: the cap grows again (within the budget of bytes the batch that fit gave).
    for index in range(SMALL_EVENTS):
        producer.produce(settings.kafka.topic, small_view(index, at), key=str(index % 64).encode())
        if index % 10_000 == 9_999:
            producer.flush(60)
    assert producer.flush(60) == 0
    job.wait_processed(EVENTS + SMALL_EVENTS)
    job.wait_logged("the last batches' record sizes call for", timeout_s=120)
    log = (settings.data_dir / "stream.log").read_text(errors="replace")
    grown = [number(cap) for cap in LIFTED.findall(log)]
    print(f"limit {limit:,}, then caps {grown}")
    assert max(grown) >= 4 * limit
    assert "times in a row without committing a batch" not in log
    assert job.process.poll() is None, job.log_tail()
    assert job.stop() == 0

    with create_client(settings, readonly=True) as client:
        stored, rows, read, duplicates, dead, late, views = client.query_rows(
            "SELECT (SELECT count() FROM {db}.events FINAL), (SELECT count() FROM {db}.events), "
            "(SELECT sum(input_rows) FROM {db}.pipeline_batches FINAL), "
            "(SELECT sum(duplicates) FROM {db}.pipeline_batches FINAL), (SELECT count() FROM {db}.dead_letters), "
            "(SELECT count() FROM {db}.late_events), (SELECT sum(views) FROM {db}.page_views_1m FINAL)"
        )[0]
    total = EVENTS + SMALL_EVENTS
    assert (stored, rows, read, duplicates, dead, late, views) == (total, total, total, 0, 0, 0, total)
