"""Settings: one typed module, RTAP_* variables, secrets hidden, every variable documented."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from rtap.settings import (
    AlertSettings,
    CollectorSettings,
    DashboardSettings,
    GeneratorSettings,
    KafkaSettings,
    MetabaseSettings,
    MetricsSettings,
    ProducerSettings,
    Settings,
    StreamSettings,
    WarehouseSettings,
)

COMPONENTS = [
    Settings,
    KafkaSettings,
    ProducerSettings,
    GeneratorSettings,
    WarehouseSettings,
    StreamSettings,
    DashboardSettings,
    CollectorSettings,
    MetabaseSettings,
    MetricsSettings,
    AlertSettings,
]
ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"


def test_environment_variables_reach_nested_components(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RTAP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RTAP_KAFKA_PARTITIONS", "12")
    monkeypatch.setenv("RTAP_STREAM_WATERMARK_DELAY_S", "5")
    monkeypatch.setenv("RTAP_CLICKHOUSE_BACKEND", "server")
    settings = Settings()
    assert settings.data_dir == tmp_path
    assert settings.paths.chdb == tmp_path / "chdb"
    assert settings.kafka.partitions == 12
    assert settings.stream.watermark_delay_s == 5
    assert settings.warehouse.backend == "server"


def test_kafka_home_is_honoured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KAFKA_HOME", str(tmp_path))
    assert KafkaSettings().home == tmp_path


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RTAP_KAFKA_PARTITIONS", "0"),
        ("RTAP_CLICKHOUSE_BACKEND", "postgres"),
        ("RTAP_CLICKHOUSE_DATABASE", "rtap; DROP TABLE x"),
        ("RTAP_DASHBOARD_PORT", "70000"),
        ("RTAP_GEN_DUPLICATE_RATE", "2"),
    ],
)
def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=variable.split("_", 2)[-1].lower()):
        Settings()


def test_secrets_never_show_in_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTAP_CLICKHOUSE_PASSWORD", "hunter2")
    monkeypatch.setenv("RTAP_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("RTAP_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("RTAP_KAFKA_SASL_USERNAME", "rtap")
    monkeypatch.setenv("RTAP_KAFKA_SASL_PASSWORD", "s3cret")
    settings = Settings()
    assert "hunter2" not in repr(settings)
    assert "s3cret" not in repr(settings)
    assert settings.kafka.client_config()["sasl.password"] == "s3cret"


def test_servers_bind_to_loopback_by_default() -> None:
    settings = Settings()
    assert settings.kafka.host == settings.dashboard.host == settings.metrics.host == "127.0.0.1"
    assert settings.collect.host == "127.0.0.1"


def test_env_example_lists_every_variable() -> None:
    documented = {
        line.split("=", 1)[0] for line in ENV_EXAMPLE.read_text().splitlines() if "=" in line and line[0] != "#"
    }
    expected = {
        f"{cls.model_config['env_prefix']}{name.upper()}"  # type: ignore[attr-defined]  # a settings class
        for cls in COMPONENTS
        for name, field in cls.model_fields.items()  # type: ignore[attr-defined]
        if field.annotation not in COMPONENTS
    }
    assert expected == documented


def test_a_copied_env_example_means_the_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(ENV_EXAMPLE.read_text())
    assert Settings().kafka.home is None
    assert Settings().model_dump(exclude={"data_dir", "jars_dir"}) == Settings(_env_file=None).model_dump(  # type: ignore[call-arg]  # pydantic-settings' init-only option
        exclude={"data_dir", "jars_dir"}
    )


def test_a_child_process_reads_back_the_same_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from rtap.settings import StreamSettings, child_environment

    parent = Settings(
        data_dir=tmp_path,
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1234", topic="t.events", dlq_topic="t.dlq", partitions=3),
        stream=StreamSettings(master="local[2]", trigger_interval_s=0.5, max_batch_records=10, max_batch_bytes=2**21),
    )
    for name, value in child_environment(parent).items():
        if name.startswith("RTAP_"):
            monkeypatch.setenv(name, value)
    child = Settings()
    assert child.data_dir == parent.data_dir
    assert child.kafka.model_dump(
        include={"bootstrap_servers", "topic", "dlq_topic", "partitions"}
    ) == parent.kafka.model_dump(include={"bootstrap_servers", "topic", "dlq_topic", "partitions"})
    assert child.stream.master == "local[2]"
    assert child.stream.max_batch_records == 10
    assert child.stream.max_batch_bytes == 2**21


def test_the_bootstrap_address_alone_places_the_local_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue #16: RTAP_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:29092 started the broker on 9092, then produce timed out.
    monkeypatch.setenv("RTAP_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:29092")
    kafka = Settings().kafka
    assert (kafka.host, kafka.port) == ("127.0.0.1", 29092)
    assert kafka.local_listener_conflict() is None


def test_the_listener_alone_moves_the_clients_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    assert KafkaSettings(host="::1", port=19092).bootstrap_servers == "[::1]:19092"
    assert KafkaSettings(bootstrap_servers="[::1]:19093").port == 19093
    monkeypatch.setenv("RTAP_KAFKA_PORT", "19092")
    assert Settings().kafka.bootstrap_servers == "127.0.0.1:19092"


@pytest.mark.parametrize(
    ("values", "local"),
    [
        ({}, True),
        ({"bootstrap_servers": "127.0.0.1:29092"}, True),
        ({"bootstrap_servers": "localhost:9092"}, True),
        ({"bootstrap_servers": "10.0.0.5:9092"}, False),  # one broker, elsewhere: not one `rtap kafka start` runs
        ({"bootstrap_servers": "127.0.0.1:9092,127.0.0.1:9094"}, False),
        ({"bootstrap_servers": "127.0.0.1:29092", "port": 9092}, False),
        ({"bootstrap_servers": "127.0.0.1:9096", "security_protocol": "SSL"}, False),  # the local broker is PLAINTEXT
    ],
)
def test_only_one_plaintext_loopback_address_may_be_the_local_broker(values: dict[str, Any], local: bool) -> None:
    assert KafkaSettings(_env_file=None, **values).names_local_broker is local  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("environment", "reason"),
    [
        ({"RTAP_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:29092", "RTAP_KAFKA_PORT": "9092"}, "where no client would look"),
        ({"RTAP_KAFKA_BOOTSTRAP_SERVERS": "a:9092,b:9092"}, "does not name one broker"),
        ({"RTAP_KAFKA_BOOTSTRAP_SERVERS": "no-port"}, "does not name one broker"),
    ],
)
def test_two_addresses_for_one_broker_are_named_in_one_line(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], reason: str
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    conflict = Settings().kafka.local_listener_conflict()
    assert conflict is not None
    assert reason in conflict
    assert environment["RTAP_KAFKA_BOOTSTRAP_SERVERS"] in conflict
    assert "\n" not in conflict


@pytest.mark.parametrize(
    ("variables", "line"),
    [
        ({"RTAP_KAFKA_PARTITIONS": "0"}, "error: RTAP_KAFKA_PARTITIONS: Input should be greater than or equal to 1"),
        (
            {"RTAP_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "RTAP_KAFKA_SASL_PASSWORD": "hunter2"},
            "error: RTAP_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs RTAP_KAFKA_SASL_MECHANISM",
        ),
        (
            {"RTAP_KAFKA_SASL_MECHANISM": "hunter2"},
            "error: RTAP_KAFKA_SASL_MECHANISM: Input should be 'PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512' or",
        ),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_variable_never_its_value(
    variables: dict[str, str], line: str, tmp_path: Path
) -> None:
    import subprocess
    import sys

    environment = {k: v for k, v in os.environ.items() if not k.startswith("RTAP_")} | variables
    result = subprocess.run(
        [sys.executable, "-m", "rtap", "kafka", "status"],
        env=environment, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith(line), result.stderr
    assert result.stderr.count("\n") == 1
    assert "hunter2" not in result.stderr
