"""The cluster layout and the settings it derives: what differs between local and cluster mode, and only that."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rtap.errors import ConfigError
from rtap.runtime.cluster.layout import LAYOUT_FILE, BrokerPorts, ClusterLayout
from rtap.settings import Settings, StreamSettings


def _layout(brokers: int = 3) -> ClusterLayout:
    return ClusterLayout(
        host="127.0.0.1",
        brokers=tuple(BrokerPorts(19092 + 2 * i, 19093 + 2 * i) for i in range(brokers)),
        master_port=17077,
        master_ui_port=18080,
        worker_ports=(17101, 17102),
        worker_ui_ports=(18101, 18102),
    )


def test_addresses_list_every_broker_and_voter_and_the_master() -> None:
    layout = _layout()

    assert layout.bootstrap_servers == "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"
    assert layout.quorum_voters == "1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097"
    assert layout.master_url == "spark://127.0.0.1:17077"


@pytest.mark.parametrize(("brokers", "replicas", "in_sync"), [(1, 1, 1), (2, 2, 2), (3, 3, 2), (5, 3, 2)])
def test_replication_is_three_copies_two_in_sync_capped_by_the_broker_count(
    brokers: int, replicas: int, in_sync: int
) -> None:
    layout = _layout(brokers)

    assert (layout.replication_factor, layout.min_insync_replicas) == (replicas, in_sync)


def test_pipeline_settings_change_only_the_bootstrap_replication_and_master(tmp_path: Path) -> None:
    local = Settings(data_dir=tmp_path, stream=StreamSettings(trigger_interval_s=0.5))
    layout = _layout()

    clustered = layout.pipeline_settings(local)

    assert clustered.kafka.bootstrap_servers == layout.bootstrap_servers
    assert (clustered.kafka.replication_factor, clustered.kafka.min_insync_replicas) == (3, 2)
    assert clustered.stream.master == layout.master_url
    changed_kafka = {"bootstrap_servers", "replication_factor", "min_insync_replicas"}
    assert clustered.kafka.model_dump(exclude=changed_kafka) == local.kafka.model_dump(exclude=changed_kafka)
    assert clustered.stream.model_dump(exclude={"master"}) == local.stream.model_dump(exclude={"master"})
    others = {"kafka", "stream"}
    assert clustered.model_dump(exclude=others) == local.model_dump(exclude=others)
    assert local.stream.master == "local[*]"  # the original is not modified


def test_environment_round_trips_through_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    layout = _layout()
    for name, value in layout.environment().items():
        monkeypatch.setenv(name, value)

    settings = Settings()

    assert settings.kafka.bootstrap_servers == layout.bootstrap_servers
    assert (settings.kafka.replication_factor, settings.kafka.min_insync_replicas) == (3, 2)
    assert settings.stream.master == layout.master_url


def test_free_ports_are_distinct() -> None:
    layout = ClusterLayout.on_free_ports(brokers=3, workers=2)
    ports = [p for b in layout.brokers for p in (b.port, b.controller_port)]
    ports += [layout.master_port, layout.master_ui_port, *layout.worker_ports, *layout.worker_ui_ports]

    assert len(set(ports)) == 12
    assert all(1024 <= p <= 65535 for p in ports)


def test_an_empty_cluster_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least one broker and one worker"):
        ClusterLayout.on_free_ports(brokers=0)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    layout = _layout()

    path = layout.save(tmp_path / "cluster")

    assert path.name == LAYOUT_FILE
    assert ClusterLayout.load(tmp_path / "cluster") == layout


def test_load_without_a_cluster_names_the_command(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="rtap cluster up"):
        ClusterLayout.load(tmp_path)


def test_load_of_a_foreign_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / LAYOUT_FILE).write_text(json.dumps({"host": "127.0.0.1"}))

    with pytest.raises(ConfigError, match="not a cluster layout"):
        ClusterLayout.load(tmp_path)
