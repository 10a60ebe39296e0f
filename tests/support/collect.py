"""The collector under test: `rtap collect` as `rtap up` runs it (rtap.runtime.stack.collector), on its own topics,
and what it wrote, read back from Kafka."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, TopicPartition

from rtap.ingest.topics import ensure_topics
from rtap.runtime.stack.collector import CollectorDaemon
from rtap.settings import CollectorSettings, KafkaSettings, Settings
from tests.support.paths import free_port


def collector_settings(base: Settings, data_dir: Path, unique_name: Callable[[str], str]) -> Settings:
    """``base``'s broker, topics of this test only, a free collector port."""
    kafka = base.kafka.model_copy(
        update={
            "topic": unique_name("events"),
            "browser_topic": unique_name("browser"),
            "dlq_topic": unique_name("dlq"),
        }
    )
    return base.model_copy(
        update={"kafka": kafka, "data_dir": data_dir, "collect": CollectorSettings(port=free_port(), _env_file=None)}  # type: ignore[call-arg]
    )


@contextmanager
def running_collector(settings: Settings, env: dict[str, str] | None = None) -> Iterator[CollectorDaemon]:
    ensure_topics(settings.kafka)
    daemon = CollectorDaemon(settings, env)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


def new_event(n: int = 0, **fields: Any) -> dict[str, Any]:
    """A tracker event as a browser sends it."""
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "type": "page_view",
        "created_at": "2026-12-02T07:59:50.000Z",
        "anonymous_id": f"anon-{n}",
        "session_id": f"sess-{n}",
        "url": f"http://127.0.0.1/shop/p{n}",
        "referrer": None,
        "title": "Shop",
        "device": "desktop",
    }
    event.update(fields)
    return event


def read_topic(
    kafka: KafkaSettings, topic: str, at_least: int, timeout_s: float = 30.0, settle_s: float = 1.0
) -> list[Any]:
    """Every record of ``topic``: waits for ``at_least`` of them, then ``settle_s`` more for any beyond."""
    consumer = Consumer({**kafka.client_config(), "group.id": "rtap-test", "enable.auto.commit": False})
    metadata = consumer.list_topics(topic, timeout=10)
    consumer.assign([TopicPartition(topic, p, 0) for p in metadata.topics[topic].partitions])
    messages: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < at_least and time.monotonic() < deadline:
            messages.extend(m for m in consumer.consume(num_messages=1000, timeout=0.5) if m.error() is None)
        settle = time.monotonic() + settle_s
        while time.monotonic() < settle:
            messages.extend(m for m in consumer.consume(num_messages=1000, timeout=0.2) if m.error() is None)
    finally:
        consumer.close()
    return messages


def values(messages: list[Any]) -> list[dict[str, Any]]:
    return [orjson.loads(m.value()) for m in messages]
