"""The local broker as a user runs it: real JVM, real KRaft storage, real clients on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from rtap.errors import BrokerStartError, PortInUseError
from rtap.ingest.topics import ensure_topics
from rtap.runtime.broker import LocalKafka
from rtap.settings import Settings
from tests.support.pipeline import local_broker_settings


def _processes_using(config: Path) -> list[int]:
    """Live processes whose command line names ``config``: what a failed start must not leave behind."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if str(config).encode() in args:
                found.append(int(entry.name))
    return found


def _count_records(settings: Settings, topic: str) -> int:
    consumer = Consumer({**settings.kafka.client_config(), "group.id": "rtap-test", "enable.auto.commit": False})
    try:
        total = 0
        for partition in range(settings.kafka.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


def test_status_reports_pid_address_and_topics(local_kafka: LocalKafka, kafka_settings: Settings) -> None:
    ensure_topics(kafka_settings.kafka)

    status = local_kafka.status()

    assert status.running
    assert status.pid == local_kafka.pid()
    assert status.address == kafka_settings.kafka.bootstrap_servers
    assert {kafka_settings.kafka.topic, kafka_settings.kafka.dlq_topic} <= set(status.topics)


def test_stop_then_start_keeps_the_data(
    local_kafka: LocalKafka, kafka_settings: Settings, unique_name: Callable[[str], str]
) -> None:
    kafka = kafka_settings.kafka.model_copy(update={"topic": unique_name("restart"), "dlq_topic": unique_name("dlq")})
    settings = kafka_settings.model_copy(update={"kafka": kafka})
    ensure_topics(kafka)
    producer = Producer({**kafka.client_config(), "acks": "all"})
    for i in range(100):
        producer.produce(kafka.topic, value=b"v%d" % i, key=b"k%d" % i)
    assert producer.flush(30) == 0

    old_pid = local_kafka.pid()
    assert local_kafka.stop()
    assert local_kafka.pid() is None
    assert not local_kafka.status().running
    new_pid = local_kafka.start()

    assert new_pid != old_pid
    assert _count_records(settings, kafka.topic) == 100


def test_taken_port_is_a_clear_error_and_starts_nothing(local_kafka: LocalKafka, tmp_path: Path) -> None:
    settings = local_broker_settings(tmp_path)
    taken = local_kafka.settings.kafka.port
    kafka = settings.kafka.model_copy(update={"port": taken, "bootstrap_servers": f"127.0.0.1:{taken}"})
    settings = settings.model_copy(update={"kafka": kafka})
    broker = LocalKafka(settings)

    with pytest.raises(PortInUseError, match=f"127.0.0.1:{taken} for the Kafka listener is already in use"):
        broker.start()
    assert broker.pid() is None
    assert _processes_using(broker.files.server_properties) == []


def test_broker_that_is_not_ready_in_time_is_killed(tmp_path: Path) -> None:
    broker = LocalKafka(local_broker_settings(tmp_path))

    with pytest.raises(BrokerStartError, match="did not become ready"):
        broker.start(timeout_s=0.5)
    assert not broker.files.pid.exists()
    assert _processes_using(broker.files.server_properties) == []


def test_broker_that_fails_to_start_reports_its_log(tmp_path: Path) -> None:
    settings = local_broker_settings(tmp_path)
    settings = settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"heap": "12q"})})
    broker = LocalKafka(settings)

    with pytest.raises(BrokerStartError, match=r"failed .* last log lines: Invalid initial heap size: -Xms12q"):
        broker.start()
    assert _processes_using(broker.files.server_properties) == []


def test_cli_start_whose_topics_cannot_be_created_stops_the_broker_it_started(tmp_path: Path) -> None:
    """`rtap kafka start` starts the broker, then creates rtap's topics; a creation Kafka refuses (a replication
    factor of 3 on one broker) is one line and a non-zero exit, and the broker does not stay behind."""
    settings = local_broker_settings(tmp_path)
    kafka = settings.kafka
    environment = {
        **os.environ,
        "RTAP_DATA_DIR": str(tmp_path),
        "RTAP_JARS_DIR": str(settings.jars_dir),
        "RTAP_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "RTAP_KAFKA_PORT": str(kafka.port),
        "RTAP_KAFKA_CONTROLLER_PORT": str(kafka.controller_port),
        "RTAP_KAFKA_REPLICATION_FACTOR": "3",
    }
    done = subprocess.run(
        [sys.executable, "-m", "rtap", "kafka", "start"], env=environment, capture_output=True, text=True, timeout=180
    )

    assert done.returncode == 1, done.stdout + done.stderr
    assert f"error: creating Kafka topic {kafka.topic} failed: " in done.stderr + done.stdout
    assert _processes_using(LocalKafka(settings).files.server_properties) == []


OWNER = textwrap.dedent(
    """
    import sys, time
    from rtap.runtime.broker import LocalKafka
    from rtap.settings import KafkaSettings, Settings

    port, controller_port, data_dir, jars_dir = sys.argv[1:]
    kafka = KafkaSettings(port=int(port), controller_port=int(controller_port))
    broker = LocalKafka(Settings(data_dir=data_dir, jars_dir=jars_dir, kafka=kafka))
    print(broker.start(), flush=True)
    time.sleep(600)
    """
)


def test_attached_broker_dies_with_its_parent(tmp_path: Path) -> None:
    settings = local_broker_settings(tmp_path)
    kafka = settings.kafka
    owner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            OWNER,
            str(kafka.port),
            str(kafka.controller_port),
            str(tmp_path),
            str(settings.jars_dir),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    broker = LocalKafka(settings)
    try:
        assert owner.stdout is not None
        broker_pid = int(owner.stdout.readline())
        assert broker.pid() == broker_pid

        os.kill(owner.pid, signal.SIGKILL)  # no atexit, no __exit__: only the kernel can tell the broker
        owner.wait(10)
        deadline = time.monotonic() + 60
        while broker.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.2)

        assert broker.pid() is None
        assert _processes_using(broker.files.server_properties) == []
    finally:
        owner.kill()
        broker.stop(timeout_s=5)
