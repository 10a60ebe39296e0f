"""The brokers of the local cluster (``rtap.runtime.cluster.kafka``), built without starting a JVM."""

from __future__ import annotations

from pathlib import Path

from rtap.runtime.cluster.kafka import KafkaCluster
from rtap.runtime.cluster.layout import ClusterLayout
from rtap.settings import Settings


def test_cluster_nodes_share_one_id_and_keep_separate_ports_and_data(tmp_path: Path, layout: ClusterLayout) -> None:
    cluster = KafkaCluster(Settings(data_dir=tmp_path), layout, tmp_path / "cluster", attached=False)

    nodes = cluster.nodes
    assert [n.node.node_id for n in nodes if n.node] == [1, 2, 3]
    assert len({n.node.cluster_id for n in nodes if n.node}) == 1
    assert len({n.files.root for n in nodes}) == 3
    assert [n.bootstrap_servers for n in nodes] == ["127.0.0.1:19092", "127.0.0.1:19094", "127.0.0.1:19096"]
    assert cluster.kafka_settings().bootstrap_servers == layout.bootstrap_servers
    # A second supervisor over the same files (``rtap cluster down``) finds the same cluster id.
    again = KafkaCluster(Settings(data_dir=tmp_path), layout, tmp_path / "cluster", attached=False)
    assert again.nodes[0].node == nodes[0].node
