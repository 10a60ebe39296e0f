"""What runs Kafka and Spark for ``rtap up``: the local profile (one broker, ``local[*]``), the cluster profile, or
the external profile (the services a team already runs; rtap starts none of them).

``rtap up`` and ``rtap status`` treat both alike through :class:`Profile`; the stack's code has no branch on
which one runs. A profile says which ports it needs free, starts its processes inside the stack (stopped with
it), hands back the settings the pipeline runs with, and says when the stack must stop because of them.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from rtap.errors import RtapError
from rtap.runtime.broker import LocalKafka
from rtap.runtime.broker.config import kafka_classpath
from rtap.runtime.broker.local import check_local_listener
from rtap.runtime.cluster import LocalCluster
from rtap.runtime.stack.checks import Check
from rtap.settings import Settings


@dataclass(frozen=True)
class Started:
    """A profile's processes, running: the settings pointed at them, what to print, and their health check."""

    settings: Settings
    lines: list[str]
    failure: Callable[[], str | None]  # why the stack must stop, or None


class Profile(ABC):
    """The Kafka and Spark processes the pipeline runs on, on this machine."""

    name: str
    #: Whether Spark's session can be built before :meth:`start` (its master does not depend on it): the JVM's
    #: start then overlaps the warehouse's and the broker's.
    spark_first: bool

    @abstractmethod
    def ports(self, settings: Settings) -> list[tuple[str, int, str]]:
        """(host, port, what) this profile listens on with fixed ports, checked free before anything starts."""

    def preflight(self, settings: Settings) -> None:  # noqa: B027 - a profile with nothing more to check
        """Refuse to start, in one line, what is certain to fail beyond a taken port."""

    @abstractmethod
    def start(self, settings: Settings, stack: contextlib.ExitStack) -> Started:
        """Start the processes (stopped when ``stack`` closes)."""

    @abstractmethod
    def status(self, settings: Settings) -> Check | None:
        """``rtap status``'s line for this profile's processes in this data directory; None if none run."""


class LocalProfile(Profile):
    """One KRaft broker on the configured ports; Spark ``local[*]`` inside the job's process."""

    name = "local"
    spark_first = True

    def ports(self, settings: Settings) -> list[tuple[str, int, str]]:
        return [
            (settings.kafka.host, settings.kafka.port, "the Kafka listener"),
            (settings.kafka.host, settings.kafka.controller_port, "the Kafka controller"),
        ]

    def preflight(self, settings: Settings) -> None:
        check_local_listener(settings.kafka)
        kafka_classpath(settings)

    def start(self, settings: Settings, stack: contextlib.ExitStack) -> Started:
        kafka = stack.enter_context(LocalKafka(settings))

        def failure() -> str | None:
            if kafka.pid() is None:
                return "the Kafka broker stopped unexpectedly; see its log in the data directory"
            return None

        return Started(settings, [f"Kafka broker on {kafka.bootstrap_servers} (pid {kafka.pid()})"], failure)

    def status(self, settings: Settings) -> Check:
        broker = LocalKafka(settings, attached=False).status()
        if not broker.running:
            return Check("broker", False, "not reachable")
        pid = f", pid {broker.pid}" if broker.pid else ""
        return Check("broker", True, f"{settings.kafka.bootstrap_servers}{pid}")


class ClusterProfile(Profile):
    """Three KRaft brokers (replication 3, min ISR 2) and a Spark standalone master with two workers, on free
    ports (``rtap.runtime.cluster``); the job, its SQL and the warehouse are the same, only the settings differ."""

    name = "cluster"
    spark_first = False  # the session connects to the standalone master, which starts with the cluster

    def ports(self, settings: Settings) -> list[tuple[str, int, str]]:
        return []  # the brokers and Spark daemons pick free ports themselves

    def preflight(self, settings: Settings) -> None:
        kafka_classpath(settings)

    def start(self, settings: Settings, stack: contextlib.ExitStack) -> Started:
        cluster = stack.enter_context(LocalCluster(settings))
        layout = cluster.layout
        lines = [
            f"Kafka cluster: {len(layout.brokers)} KRaft brokers on {layout.bootstrap_servers} "
            f"(replication {layout.replication_factor}, min.insync.replicas {layout.min_insync_replicas})",
            f"Spark standalone master {layout.master_url} with {len(cluster.spark.workers)} workers",
        ]

        def failure() -> str | None:
            # Losing a broker is what replication is for: the stack stops only when writes can no longer be acked.
            alive = sum(pid is not None for pid in cluster.kafka.pids())
            if alive < layout.min_insync_replicas:
                return f"only {alive} Kafka brokers run, fewer than min.insync.replicas ({layout.min_insync_replicas})"
            if cluster.spark.master.pid() is None:
                return "the Spark master stopped unexpectedly; see its log in the cluster directory"
            return None

        return Started(cluster.pipeline_settings(), lines, failure)

    def status(self, settings: Settings) -> Check | None:
        try:
            cluster = LocalCluster.existing(settings)
        except RtapError:  # no cluster layout in this data directory
            return None
        pids = cluster.kafka.pids()
        alive = sum(pid is not None for pid in pids)
        if not alive:
            return None
        healthy = alive >= cluster.layout.min_insync_replicas
        return Check("brokers", healthy, f"{alive} of {len(pids)} running on {cluster.layout.bootstrap_servers}")


class ExternalProfile(Profile):
    """The Kafka cluster, Spark master and ClickHouse the settings name, already running elsewhere: nothing is
    started, nothing is created on them. ``rtap preflight``'s checks run first and name every problem in one line
    each (docs/external.md); only rtap's own processes start (the job's driver, dashboard, collector)."""

    name = "external"
    spark_first = True  # the master is up already

    def ports(self, settings: Settings) -> list[tuple[str, int, str]]:
        return []

    def preflight(self, settings: Settings) -> None:
        from rtap.runtime.stack.preflight import require_services

        require_services(settings)

    def start(self, settings: Settings, stack: contextlib.ExitStack) -> Started:
        kafka = settings.kafka
        lines = [
            f"Kafka: the existing cluster at {kafka.bootstrap_servers} ({kafka.security_protocol}), nothing started",
            f"Spark master: {settings.stream.master}",
        ]
        # A cluster that goes away fails the job's batches, which stop the stack after
        # RTAP_STREAM_MAX_CONSECUTIVE_FAILURES in a row: no process of this profile to watch.
        return Started(settings, lines, lambda: None)

    def status(self, settings: Settings) -> Check | None:
        """The cluster the settings name, unless they name the local broker (then it is not external)."""
        from rtap.errors import BrokerError
        from rtap.kafka_admin import connect

        kafka = settings.kafka
        if kafka.names_local_broker:
            return None
        try:
            metadata = connect(kafka, timeout_s=5.0)[1]
        except BrokerError as error:
            return Check("kafka", False, str(error))
        return Check("kafka", True, f"{len(metadata.brokers)} of the cluster's brokers at {kafka.bootstrap_servers}")


LOCAL = LocalProfile()
#: ``rtap up --profile`` chooses among these.
PROFILES: dict[str, Profile] = {profile.name: profile for profile in (LOCAL, ClusterProfile(), ExternalProfile())}


def brokers_check(settings: Settings) -> Check:
    """``rtap status``'s line on Kafka: the first other profile whose processes run in this data directory, or
    the external cluster the settings name, else the local broker (which answers even when it is down)."""
    for profile in PROFILES.values():
        if profile is not LOCAL and (check := profile.status(settings)) is not None:
            return check
    return LOCAL.status(settings)
