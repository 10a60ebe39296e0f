"""Where the local cluster's processes listen and keep their files: pure data, saved next to them.

A detached cluster (``rtap cluster up``) outlives the command that started it, so its layout is written to
``<data dir>/cluster/cluster.json``; ``rtap cluster status|down`` and the settings a pipeline needs to use the
cluster are read back from it rather than recomputed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from rtap.errors import ConfigError
from rtap.runtime.ports import free_ports
from rtap.settings import LOOPBACK, Settings

LAYOUT_FILE = "cluster.json"
# Replication of rtap's topics on the cluster: the loss of one broker neither loses an acknowledged record
# (three copies) nor stops producers (two in-sync replicas remain, and min.insync.replicas asks for two).
REPLICATION_FACTOR = 3
MIN_INSYNC_REPLICAS = 2


@dataclass(frozen=True)
class BrokerPorts:
    port: int
    controller_port: int


@dataclass(frozen=True)
class ClusterLayout:
    """Every port of the local cluster, all on ``host``."""

    host: str
    brokers: tuple[BrokerPorts, ...]
    master_port: int
    master_ui_port: int
    worker_ports: tuple[int, ...]
    worker_ui_ports: tuple[int, ...]

    @classmethod
    def on_free_ports(cls, *, brokers: int = 3, workers: int = 2, host: str = LOOPBACK) -> ClusterLayout:
        """A layout whose ports are free right now (tests, and ``rtap cluster up`` by default)."""
        if brokers < 1 or workers < 1:
            raise ConfigError(f"a cluster needs at least one broker and one worker (got {brokers} and {workers})")
        ports = iter(free_ports(2 * brokers + 2 + 2 * workers, host))
        return cls(
            host=host,
            brokers=tuple(BrokerPorts(next(ports), next(ports)) for _ in range(brokers)),
            master_port=next(ports),
            master_ui_port=next(ports),
            worker_ports=tuple(next(ports) for _ in range(workers)),
            worker_ui_ports=tuple(next(ports) for _ in range(workers)),
        )

    @property
    def bootstrap_servers(self) -> str:
        """Every broker: a client that knows only a dead one could not start."""
        return ",".join(f"{self.host}:{b.port}" for b in self.brokers)

    @property
    def quorum_voters(self) -> str:
        return ",".join(f"{i}@{self.host}:{b.controller_port}" for i, b in enumerate(self.brokers, start=1))

    @property
    def master_url(self) -> str:
        return f"spark://{self.host}:{self.master_port}"

    @property
    def replication_factor(self) -> int:
        return min(REPLICATION_FACTOR, len(self.brokers))

    @property
    def min_insync_replicas(self) -> int:
        return min(MIN_INSYNC_REPLICAS, len(self.brokers))

    def pipeline_settings(self, settings: Settings) -> Settings:
        """``settings`` pointed at this cluster: the only difference between local and cluster mode."""
        kafka = settings.kafka.model_copy(
            update={
                "bootstrap_servers": self.bootstrap_servers,
                "replication_factor": self.replication_factor,
                "min_insync_replicas": self.min_insync_replicas,
            }
        )
        stream = settings.stream.model_copy(update={"master": self.master_url})
        return settings.model_copy(update={"kafka": kafka, "stream": stream})

    def environment(self) -> dict[str, str]:
        """The RTAP_* variables that point any rtap command at this cluster (what ``rtap cluster up`` prints)."""
        return {
            "RTAP_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "RTAP_KAFKA_REPLICATION_FACTOR": str(self.replication_factor),
            "RTAP_KAFKA_MIN_INSYNC_REPLICAS": str(self.min_insync_replicas),
            "RTAP_STREAM_MASTER": self.master_url,
        }

    def save(self, root: Path) -> Path:
        root.mkdir(parents=True, exist_ok=True)
        path = root / LAYOUT_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, root: Path) -> ClusterLayout:
        path = root / LAYOUT_FILE
        try:
            raw = json.loads(path.read_text())
            return cls(
                host=raw["host"],
                brokers=tuple(BrokerPorts(**b) for b in raw["brokers"]),
                master_port=raw["master_port"],
                master_ui_port=raw["master_ui_port"],
                worker_ports=tuple(raw["worker_ports"]),
                worker_ui_ports=tuple(raw["worker_ui_ports"]),
            )
        except FileNotFoundError as exc:
            raise ConfigError(f"no local cluster in {root} (no {LAYOUT_FILE}): `rtap cluster up` starts one") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path} is not a cluster layout written by rtap: {exc}") from exc
