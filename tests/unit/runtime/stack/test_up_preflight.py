"""``rtap up``'s preflight: a port that is taken is one clear error before anything starts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from rtap.errors import ConfigError, PortInUseError
from rtap.runtime.stack.profiles import PROFILES
from rtap.runtime.stack.up import preflight
from rtap.settings import (
    CollectorSettings,
    DashboardSettings,
    KafkaSettings,
    MetricsSettings,
    Settings,
    StreamSettings,
)
from tests.support.paths import free_port
from tests.support.paths import taken_port as listening

LOCAL, CLUSTER = PROFILES["local"], PROFILES["cluster"]

REPO_ROOT = Path(__file__).resolve().parents[4]


@pytest.fixture
def taken_port() -> Iterator[int]:
    with listening() as port:
        yield port


def _settings(
    tmp_path: Path,
    *,
    kafka_port: int,
    dashboard_port: int,
    metrics_port: int | None = None,
    collect_port: int | None = None,
) -> Settings:
    return Settings(
        data_dir=tmp_path,
        jars_dir=REPO_ROOT / "jars" / "lib",
        kafka=KafkaSettings(port=kafka_port, controller_port=free_port()),
        dashboard=DashboardSettings(port=dashboard_port),
        collect=CollectorSettings(port=free_port() if collect_port is None else collect_port),
        metrics=MetricsSettings(port=free_port() if metrics_port is None else metrics_port),
    )


def test_a_taken_kafka_port_stops_the_local_profile_only(tmp_path: Path, taken_port: int) -> None:
    settings = _settings(tmp_path, kafka_port=taken_port, dashboard_port=free_port())
    with pytest.raises(PortInUseError, match="Kafka listener"):
        preflight(settings, LOCAL)
    preflight(settings, CLUSTER)  # the cluster's brokers pick free ports of their own


def test_a_taken_dashboard_port_stops_both_profiles(tmp_path: Path, taken_port: int) -> None:
    settings = _settings(tmp_path, kafka_port=free_port(), dashboard_port=taken_port)
    for profile in (LOCAL, CLUSTER):
        with pytest.raises(PortInUseError, match="dashboard"):
            preflight(settings, profile)


def test_a_taken_collector_port_or_a_public_demo_key_stops_both_profiles(tmp_path: Path, taken_port: int) -> None:
    settings = _settings(tmp_path, kafka_port=free_port(), dashboard_port=free_port(), collect_port=taken_port)
    for profile in (LOCAL, CLUSTER):
        with pytest.raises(PortInUseError, match="the collector"):
            preflight(settings, profile)
    public = settings.model_copy(update={"collect": CollectorSettings(host="0.0.0.0", port=free_port())})
    with pytest.raises(ConfigError, match="only the built-in demo write key"):
        preflight(public, LOCAL)


def test_a_taken_metrics_port_stops_both_profiles(tmp_path: Path, taken_port: int) -> None:
    settings = _settings(tmp_path, kafka_port=free_port(), dashboard_port=free_port(), metrics_port=taken_port)
    for profile in (LOCAL, CLUSTER):
        with pytest.raises(PortInUseError, match="metrics endpoint"):
            preflight(settings, profile)
    preflight(settings.model_copy(update={"metrics": MetricsSettings(enabled=False, port=taken_port)}), LOCAL)


def test_two_broker_addresses_stop_the_local_profile_before_anything_starts(tmp_path: Path) -> None:
    settings = _settings(tmp_path, kafka_port=free_port(), dashboard_port=free_port())
    settings.kafka.bootstrap_servers = f"127.0.0.1:{free_port()}"
    with pytest.raises(ConfigError, match="RTAP_KAFKA_BOOTSTRAP_SERVERS"):
        preflight(settings, LOCAL)
    preflight(settings, CLUSTER)  # the cluster profile hands its clients every broker's address


def test_a_spark_ui_beyond_loopback_without_its_secret_stops_both_profiles(tmp_path: Path) -> None:
    settings = _settings(tmp_path, kafka_port=free_port(), dashboard_port=free_port())
    exposed = settings.model_copy(update={"stream": StreamSettings(ui_host="0.0.0.0")})
    for profile in (LOCAL, CLUSTER):
        with pytest.raises(ConfigError, match=r"the Spark UI would listen on 0\.0\.0\.0"):
            preflight(exposed, profile)
    secret = SecretStr("a-secret-of-at-least-thirty-two-chars")
    preflight(settings.model_copy(update={"stream": StreamSettings(ui_host="0.0.0.0", ui_secret=secret)}), LOCAL)


def test_a_dashboard_beyond_loopback_without_its_login_or_tls_stops_both_profiles(tmp_path: Path) -> None:
    settings = _settings(tmp_path, kafka_port=free_port(), dashboard_port=free_port())
    for dashboard, refusal in (
        (DashboardSettings(host="0.0.0.0"), "without authentication"),
        (DashboardSettings(host="0.0.0.0", password=SecretStr("a password")), "in plain HTTP"),
    ):
        for profile in (LOCAL, CLUSTER):
            with pytest.raises(ConfigError, match=refusal):
                preflight(settings.model_copy(update={"dashboard": dashboard}), profile)


def test_unusable_tls_files_stop_both_profiles_before_anything_starts(tmp_path: Path) -> None:
    settings = _settings(tmp_path, kafka_port=free_port(), dashboard_port=free_port())
    (tmp_path / "c.pem").write_text("not a certificate")
    files = {"tls_certificate_file": tmp_path / "c.pem", "tls_key_file": tmp_path / "k.pem"}
    for update, what in (
        ({"dashboard": DashboardSettings.model_validate(files)}, "the dashboard's"),
        ({"metrics": MetricsSettings.model_validate({**files, "port": free_port()})}, "the metrics endpoint's"),
    ):
        for profile in (LOCAL, CLUSTER):
            with pytest.raises(ConfigError, match=f"{what} TLS certificate .* cannot be used"):
                preflight(settings.model_copy(update=update), profile)
