"""Services shared by the integration tests: one real local Kafka broker for the whole session.

``kafka_settings`` is the entry point for every stage's tests: a :class:`~rtap.settings.Settings` whose
``kafka`` points at a broker started here, on free loopback ports, with its data (and every other rtap
data directory) in a temporary directory. The broker does not auto-create topics: tests call
``rtap.ingest.topics.ensure_topics`` with their own unique topic names
(``settings.kafka.model_copy(update={"topic": ..., "dlq_topic": ...})``) so they never see each other's
records. The broker is stopped at the end of the session, and dies with the test process if that is killed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rtap.runtime.broker import LocalKafka
from rtap.settings import Settings
from tests.support.pipeline import local_broker_settings


@pytest.fixture(scope="session")
def local_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """The session's broker (attached: it stops with the session, or with this process if it dies)."""
    broker = LocalKafka(local_broker_settings(tmp_path_factory.mktemp("rtap-kafka")))
    with broker:
        yield broker


@pytest.fixture(scope="session")
def kafka_settings(local_kafka: LocalKafka) -> Settings:
    """Settings whose ``kafka`` points at the session broker."""
    return local_kafka.settings.model_copy(update={"kafka": local_kafka.kafka_settings()})
