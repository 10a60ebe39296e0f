"""LocalKafka's checks that run before any JVM: ports, jars, pid files, log tails."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rtap.errors import ConfigError, DependencyError
from rtap.runtime.broker import LocalKafka
from rtap.runtime.broker.local import _log_tail
from rtap.runtime.ports import port_in_use
from rtap.settings import KafkaSettings, Settings
from tests.support.paths import free_port, taken_port


def test_port_in_use_sees_a_listener_and_not_a_free_port() -> None:
    with taken_port() as taken:
        assert port_in_use("127.0.0.1", taken)
    assert not port_in_use("127.0.0.1", free_port())


def test_start_without_jars_fails_before_starting_anything(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        jars_dir=tmp_path / "no-jars",
        kafka=KafkaSettings(port=free_port(), controller_port=free_port()),
    )
    broker = LocalKafka(settings)

    with pytest.raises(DependencyError, match="make jars"):
        broker.start()
    assert broker.pid() is None
    assert not broker.files.pid.exists()


def test_stale_pid_file_is_not_a_running_broker(tmp_path: Path) -> None:
    broker = LocalKafka(Settings(data_dir=tmp_path))
    broker.files.root.mkdir(parents=True)
    # This test process is alive but is not a Kafka broker: pids are reused after reboots.
    broker.files.pid.write_text(f"{os.getpid()}\n")

    assert broker.pid() is None
    assert broker.stop() is False
    assert not broker.files.pid.exists()


def test_log_tail_starts_just_before_the_first_error(tmp_path: Path) -> None:
    log = tmp_path / "kafka.log"
    log.write_text(
        "INFO starting\nInvalid maximum heap size: -Xmx12q\nError: Could not create the Java Virtual Machine.\n"
        "Error: A fatal exception has occurred. Program will exit.\n"
    )

    tail = _log_tail(log)

    assert tail.startswith("Invalid maximum heap size")
    assert "\n" not in tail


def test_log_tail_without_errors_is_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "kafka.log"
    log.write_text("".join(f"INFO line {i}\n" for i in range(10)))

    assert _log_tail(log) == "INFO line 6 / INFO line 7 / INFO line 8 / INFO line 9"


def test_an_address_that_is_not_this_machine_is_one_clear_line() -> None:
    with pytest.raises(ConfigError, match="does not resolve"):
        port_in_use("kafka.invalid", 9092)
    with pytest.raises(ConfigError, match="not an address of this machine"):
        port_in_use("192.0.2.1", 9092)  # TEST-NET-1 (RFC 5737): never assigned to a host


def test_a_broker_where_the_clients_do_not_look_is_refused_before_anything_starts(tmp_path: Path) -> None:
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}", port=free_port())
    broker = LocalKafka(Settings(data_dir=tmp_path, kafka=kafka))

    with pytest.raises(ConfigError, match="where no client would look"):
        broker.start()
    assert broker.pid() is None
    assert not broker.files.root.exists()


def test_clients_of_the_local_broker_use_its_listener_in_plaintext(tmp_path: Path) -> None:
    kafka = KafkaSettings(
        port=19092,
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        sasl_username="user",
        sasl_password="secret",  # type: ignore[arg-type]  # pydantic turns it into a SecretStr
    )
    broker = LocalKafka(Settings(data_dir=tmp_path, kafka=kafka))

    assert broker.kafka_settings().client_config() == {
        "bootstrap.servers": "127.0.0.1:19092",
        "security.protocol": "PLAINTEXT",
        "socket.nagle.disable": True,
    }
