"""The whole local cluster: the Kafka brokers and the Spark standalone cluster, started and stopped together.

``rtap up --profile cluster`` and ``rtap cluster up`` use :class:`LocalCluster`; the pipeline then runs with
``cluster.pipeline_settings()``, which differs from the local settings only in the Kafka bootstrap servers,
the topics' replication and the Spark master URL.
"""

from __future__ import annotations

import time
from pathlib import Path

from rtap.errors import ServiceError
from rtap.runtime.cluster.kafka import KafkaCluster
from rtap.runtime.cluster.layout import ClusterLayout
from rtap.runtime.cluster.spark import SparkStandalone
from rtap.runtime.process import Supervised
from rtap.settings import Settings

# A deadline, not a delay: on a loaded 2-core machine six JVMs starting at once take minutes.
START_TIMEOUT_S = 300.0


def cluster_root(settings: Settings) -> Path:
    """Where the cluster keeps every node's files: below the rtap data directory."""
    return settings.data_dir / "cluster"


class LocalCluster(Supervised):
    """Brokers and Spark daemons of one layout (fresh free ports unless given)."""

    def __init__(
        self,
        settings: Settings,
        layout: ClusterLayout | None = None,
        *,
        brokers: int = 3,
        workers: int = 2,
        worker_cores: int = 1,
        worker_memory: str = "1g",
        attached: bool = True,
    ) -> None:
        self.settings = settings
        self.root = cluster_root(settings)
        self.layout = layout or ClusterLayout.on_free_ports(brokers=brokers, workers=workers)
        self.kafka = KafkaCluster(settings, self.layout, self.root, attached=attached)
        self.spark = SparkStandalone(
            self.layout, self.root, worker_cores=worker_cores, worker_memory=worker_memory, attached=attached
        )

    @classmethod
    def existing(cls, settings: Settings) -> LocalCluster:
        """The detached cluster whose layout ``rtap cluster up`` saved in the data directory."""
        return cls(settings, ClusterLayout.load(cluster_root(settings)), attached=False)

    def pipeline_settings(self) -> Settings:
        """``self.settings`` pointed at this cluster."""
        return self.layout.pipeline_settings(self.settings)

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Launch every process first, then wait for both clusters: their start-ups overlap.

        After a failure nothing started here is left running.
        """
        running = self.running()
        if running:
            raise ServiceError(
                f"a local cluster already runs in {self.root} ({', '.join(running)}): `rtap cluster down`"
            )
        self.layout.save(self.root)
        deadline = time.monotonic() + timeout_s
        try:
            self.kafka.start(timeout_s, wait=False)
            self.spark.start(timeout_s, wait=False)
            self.kafka.wait_ready(max(1.0, deadline - time.monotonic()))
            self.spark.wait_workers(len(self.spark.workers), max(1.0, deadline - time.monotonic()))
        except BaseException:
            self.stop()
            raise

    def running(self) -> list[str]:
        """The names of this cluster's processes that run now."""
        brokers = [f"kafka-{n}" for n, pid in enumerate(self.kafka.pids(), start=1) if pid is not None]
        return brokers + [name for name, pid in self.spark.pids().items() if pid is not None]

    def stop(self) -> None:
        """Spark first (its executors read from Kafka), then the brokers. Safe after kills and on failure."""
        try:
            self.spark.stop()
        finally:
            self.kafka.stop()
