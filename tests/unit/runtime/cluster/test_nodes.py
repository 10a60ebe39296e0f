"""How one cluster member is configured and launched, built without starting a JVM."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtap.runtime.broker.config import BrokerFiles, KraftNode, server_properties
from rtap.runtime.cluster.kafka import KafkaCluster
from rtap.runtime.cluster.layout import BrokerPorts, ClusterLayout
from rtap.runtime.cluster.spark import MASTER_MAIN, WORKER_MAIN, MasterState, SparkStandalone, spark_home
from rtap.settings import KafkaSettings, Settings

VOTERS = "1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097"


def _layout() -> ClusterLayout:
    return ClusterLayout(
        host="127.0.0.1",
        brokers=(BrokerPorts(19092, 19093), BrokerPorts(19094, 19095), BrokerPorts(19096, 19097)),
        master_port=17077,
        master_ui_port=18080,
        worker_ports=(17101, 17102),
        worker_ui_ports=(18101, 18102),
    )


def _parse(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_a_quorum_member_lists_every_voter_and_replicates_internal_topics(tmp_path: Path) -> None:
    kafka = KafkaSettings(port=19094, controller_port=19095, replication_factor=3, min_insync_replicas=2)
    settings = Settings(data_dir=tmp_path, kafka=kafka)

    props = _parse(server_properties(settings, BrokerFiles(tmp_path), KraftNode(2, VOTERS, "abc")))

    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == VOTERS
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19094,CONTROLLER://127.0.0.1:19095"
    assert props["default.replication.factor"] == props["offsets.topic.replication.factor"] == "3"
    assert props["min.insync.replicas"] == props["transaction.state.log.min.isr"] == "2"


def test_a_single_node_is_configured_as_before(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, kafka=KafkaSettings(port=19092, controller_port=19093))

    alone = _parse(server_properties(settings, BrokerFiles(tmp_path)))

    assert alone["node.id"] == "1"
    assert alone["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert alone["offsets.topic.replication.factor"] == alone["min.insync.replicas"] == "1"
    assert _parse(server_properties(settings, BrokerFiles(tmp_path), KraftNode(1, "1@127.0.0.1:19093", "x"))) == alone


def test_cluster_nodes_share_one_id_and_keep_separate_ports_and_data(tmp_path: Path) -> None:
    cluster = KafkaCluster(Settings(data_dir=tmp_path), _layout(), tmp_path / "cluster", attached=False)

    nodes = cluster.nodes
    assert [n.node.node_id for n in nodes if n.node] == [1, 2, 3]
    assert len({n.node.cluster_id for n in nodes if n.node}) == 1
    assert len({n.files.root for n in nodes}) == 3
    assert [n.bootstrap_servers for n in nodes] == ["127.0.0.1:19092", "127.0.0.1:19094", "127.0.0.1:19096"]
    assert cluster.kafka_settings().bootstrap_servers == _layout().bootstrap_servers
    # A second supervisor over the same files (``rtap cluster down``) finds the same cluster id.
    again = KafkaCluster(Settings(data_dir=tmp_path), _layout(), tmp_path / "cluster", attached=False)
    assert again.nodes[0].node == nodes[0].node


def test_daemons_bind_loopback_ports_and_workers_register_with_the_master(tmp_path: Path) -> None:
    spark = SparkStandalone(_layout(), tmp_path, worker_cores=1, worker_memory="768m")
    home = spark_home()

    master = spark.master.command(home)
    worker = spark.workers[1].command(home)

    assert master[:2] == [str(home / "bin" / "spark-class"), MASTER_MAIN]
    assert master[master.index("--port") + 1] == "17077"
    assert worker[1] == WORKER_MAIN
    assert worker[worker.index("--host") + 1] == "127.0.0.1"
    assert worker[worker.index("--memory") + 1] == "768m"
    assert worker[worker.index("--work-dir") + 1].startswith(str(tmp_path))
    assert "spark://127.0.0.1:17077" in worker
    assert worker[-1] == str(spark.workers[1].properties_file)  # marks the process as this cluster's


def test_a_daemon_never_started_is_not_running(tmp_path: Path) -> None:
    spark = SparkStandalone(_layout(), tmp_path)

    assert set(spark.pids().values()) == {None}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"status": "ALIVE", "cores": 2, "workers": [{"state": "ALIVE"}, {"state": "DEAD"}]},
            MasterState("ALIVE", 1, 2),
        ),
        ({}, MasterState("UNKNOWN", 0, 0)),
    ],
)
def test_master_state_counts_alive_workers_only(raw: dict[str, object], expected: MasterState) -> None:
    assert MasterState.from_json(raw) == expected
