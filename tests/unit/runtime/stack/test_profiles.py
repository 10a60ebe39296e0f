"""The runtime profiles ``rtap up`` runs on: what each needs free, in which order Spark starts, how status asks."""

from __future__ import annotations

import contextlib
from pathlib import Path

from rtap.runtime.cluster import ClusterLayout
from rtap.runtime.cluster.local import cluster_root
from rtap.runtime.stack.cli import Profile
from rtap.runtime.stack.profiles import LOCAL, PROFILES, ClusterProfile, ExternalProfile, LocalProfile, brokers_check
from rtap.settings import KafkaSettings, Settings
from tests.support.paths import free_port


def _settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, kafka=KafkaSettings(port=free_port(), controller_port=free_port()))


def test_the_cli_offers_exactly_the_registered_profiles() -> None:
    assert [choice.value for choice in Profile] == list(PROFILES)
    assert isinstance(PROFILES["local"], LocalProfile)
    assert isinstance(PROFILES["cluster"], ClusterProfile)
    assert isinstance(PROFILES["external"], ExternalProfile)


def test_the_local_profile_needs_its_broker_ports_and_starts_spark_first(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert LOCAL.ports(settings) == [
        ("127.0.0.1", settings.kafka.port, "the Kafka listener"),
        ("127.0.0.1", settings.kafka.controller_port, "the Kafka controller"),
    ]
    assert LOCAL.spark_first  # local[*] needs nothing that starts with the brokers


def test_the_cluster_profile_picks_its_ports_and_starts_spark_after_its_master(tmp_path: Path) -> None:
    cluster = PROFILES["cluster"]
    assert cluster.ports(_settings(tmp_path)) == []
    assert not cluster.spark_first


def test_the_external_profile_starts_nothing_and_hands_the_settings_on_as_they_are(tmp_path: Path) -> None:
    external = PROFILES["external"]
    settings = _settings(tmp_path)
    settings.kafka.bootstrap_servers = "b-1.example:9096,b-2.example:9096,b-3.example:9096"  # any cluster's size
    assert external.ports(settings) == []
    assert external.spark_first  # the master runs already
    with contextlib.ExitStack() as stack:
        started = external.start(settings, stack)
    assert started.settings is settings
    assert started.lines[0].startswith("Kafka: the existing cluster at b-1.example:9096,b-2.example:9096,")
    assert started.failure() is None


def test_the_external_profile_has_no_status_line_where_the_settings_name_the_local_broker(tmp_path: Path) -> None:
    assert PROFILES["external"].status(_settings(tmp_path)) is None


def test_status_names_the_local_broker_when_no_cluster_was_laid_out_here(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert PROFILES["cluster"].status(settings) is None
    check = brokers_check(settings)
    assert (check.name, check.ok, check.detail) == ("broker", False, "not reachable")


def test_status_ignores_a_saved_cluster_layout_whose_brokers_are_all_down(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    ClusterLayout.on_free_ports(brokers=3, workers=1).save(cluster_root(settings))
    assert PROFILES["cluster"].status(settings) is None  # a stale layout: the local broker's line is shown
    assert brokers_check(settings).name == "broker"
