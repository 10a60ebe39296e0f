"""A Kafka cluster of separate KRaft nodes on one machine, each a :class:`~rtap.runtime.broker.LocalKafka`.

Every node is broker and controller, with its own process, ports and data directory; the quorum is static
(every node lists all voters) and shares one cluster id, written at format time. A node cannot become
ready before a majority of the quorum runs, so all nodes are started first and waited for afterwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from rtap.errors import BrokerError, BrokerStartError
from rtap.kafka_admin import registered_brokers
from rtap.runtime.broker import LocalKafka
from rtap.runtime.broker.config import KraftNode, random_cluster_id
from rtap.runtime.broker.local import START_TIMEOUT_S
from rtap.runtime.cluster.layout import ClusterLayout
from rtap.runtime.process import Supervised
from rtap.settings import KafkaSettings, Settings

_POLL_S = 0.5
CLUSTER_ID_FILE = "cluster-id"


class KafkaCluster(Supervised):
    """The brokers of ``layout``, their files below ``root/kafka-<id>``."""

    def __init__(self, settings: Settings, layout: ClusterLayout, root: Path, *, attached: bool = True) -> None:
        self.layout = layout
        self.root = root
        cluster_id = self._cluster_id()
        self.nodes = [
            LocalKafka(
                settings.model_copy(
                    update={
                        "data_dir": root / f"kafka-{node_id}",
                        "kafka": settings.kafka.model_copy(
                            update={
                                "host": layout.host,
                                "port": ports.port,
                                "controller_port": ports.controller_port,
                                "replication_factor": layout.replication_factor,
                                "min_insync_replicas": layout.min_insync_replicas,
                            }
                        ),
                    }
                ),
                attached=attached,
                node=KraftNode(node_id, layout.quorum_voters, cluster_id),
            )
            for node_id, ports in enumerate(layout.brokers, start=1)
        ]

    def _cluster_id(self) -> str:
        """One id for every node, kept with the data: a restarted node must rejoin the cluster it was formatted for."""
        path = self.root / CLUSTER_ID_FILE
        if not path.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            path.write_text(random_cluster_id() + "\n")
        return path.read_text().strip()

    def kafka_settings(self) -> KafkaSettings:
        """``settings.kafka`` for clients of this cluster: every broker, PLAINTEXT, the cluster's replication."""
        return self.nodes[0].kafka_settings().model_copy(update={"bootstrap_servers": self.layout.bootstrap_servers})

    def start(self, timeout_s: float = START_TIMEOUT_S, *, wait: bool = True) -> None:
        """Start every node, then (unless ``wait=False``) :meth:`wait_ready`.

        After a failure nothing started here is left running.
        """
        try:
            for node in self.nodes:
                node.start(timeout_s, wait=False)
            if wait:
                self.wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Until every node serves metadata with every partition led and all are registered brokers."""
        deadline = time.monotonic() + timeout_s
        for node in self.nodes:
            node.wait_ready(max(1.0, deadline - time.monotonic()))
        self._wait_registered(deadline)

    def _wait_registered(self, deadline: float) -> None:
        expected = len(self.nodes)
        seen = 0
        while time.monotonic() < deadline:
            with contextlib.suppress(BrokerError):
                seen = registered_brokers(self.kafka_settings())
                if seen == expected:
                    return
            time.sleep(_POLL_S)
        raise BrokerStartError(f"only {seen} of {expected} Kafka brokers registered on {self.layout.bootstrap_servers}")

    def pids(self) -> list[int | None]:
        return [node.pid() for node in self.nodes]

    def kill(self, index: int) -> int:
        """SIGKILL node ``index`` (0-based) and its process group, as a crash would; returns its pid."""
        pid = self.nodes[index].pid()
        if pid is None:
            raise BrokerError(f"Kafka node {index + 1} is not running")
        os.killpg(pid, signal.SIGKILL)
        return pid

    def stop(self) -> None:
        """Stop every node. All get SIGTERM at once: a node waiting for its peers' controlled shutdown must not
        wait for peers that are only signalled after it."""
        for pid in self.pids():
            if pid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGTERM)
        for node in self.nodes:
            node.stop()
