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
from pathlib import Path

import pytest

from rtap.runtime.broker import LocalKafka
from rtap.settings import KafkaSettings, Settings
from tests.conftest import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


def local_broker_settings(data_dir: Path) -> Settings:
    """Settings for a private local broker: free ports, data under ``data_dir``, the repo's jars."""
    port, controller_port = free_port(), free_port()
    kafka = KafkaSettings(
        bootstrap_servers=f"127.0.0.1:{port}", host="127.0.0.1", port=port, controller_port=controller_port
    )
    return Settings(data_dir=data_dir, jars_dir=REPO_ROOT / "jars" / "lib", kafka=kafka)


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
