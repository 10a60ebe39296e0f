"""What the local broker runs with: its files, its ``server.properties``, its logging and its command lines.

Everything here is pure (settings in, text and argument lists out) so it is unit-tested without a JVM.
The broker is one KRaft node that is both broker and controller. Its quorum is declared statically
(``controller.quorum.voters``) rather than formatted as a dynamic ``--standalone`` quorum: a dynamic
quorum records the controller's endpoint in the metadata log at format time, so a later start on another
port (tests pick free ports) would advertise a stale controller address. A static voter is read from
this file on every start.

The same configuration makes one node of a multi-node quorum (:class:`KraftNode`, used by
:mod:`rtap.runtime.cluster`): every node lists all voters, and replicated topics get the cluster's replication.

Beside its PLAINTEXT listener on loopback (which the controller, rtap's own readiness checks and the default
clients use) the broker can serve authenticated, encrypted listeners (:class:`BrokerSecurity`): TLS with or
without client certificates, SASL/SCRAM over TLS. That is how the tests prove every client over the protocols a
team's cluster speaks (tests/e2e/test_kafka_security.py).
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rtap.errors import DependencyError
from rtap.runtime.jvm import class_sharing_options
from rtap.settings import Settings

NODE_ID = 1
BROKER_MAIN = "kafka.Kafka"
STORAGE_TOOL_MAIN = "kafka.tools.StorageTool"
# The marker of a Kafka classpath: the broker's own (Scala 2.13) jar.
BROKER_JAR_GLOB = "kafka_2.13-*.jar"
# Kafka's own launcher (kafka-run-class.sh) uses these GC settings for the broker.
JVM_FLAGS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
    # Both JIT compilers (the JVM's default), not the client one only (-XX:TieredStopAtLevel=1, rtap's choice
    # until 2026-12-04): under load, C2's code costs the broker a third less CPU (0.28-0.30 -> 0.18-0.20 cores at
    # 30,000 events/s in and out, 2 runs each), which the job on the same 2 cores gets; compiling it makes
    # `rtap up`'s first rows ~1 s later (11.0 -> 12.1 s). docs/operations.md has the measurement.
)

LOG4J2_PROPERTIES = """\
# Written by rtap on every start. The broker logs to stdout, which rtap sends to kafka.log.
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.target = SYSTEM_OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d{ISO8601}] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
# Per-request and state-change chatter: useful when debugging Kafka itself, noise otherwise.
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = INFO
"""


@dataclass(frozen=True)
class BrokerFiles:
    """Where one local broker keeps its state: all below ``settings.paths.kafka``."""

    root: Path

    @property
    def server_properties(self) -> Path:
        return self.root / "server.properties"

    @property
    def log4j_config(self) -> Path:
        return self.root / "log4j2.properties"

    @property
    def log(self) -> Path:
        return self.root / "kafka.log"

    @property
    def pid(self) -> Path:
        return self.root / "kafka.pid"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def keystore(self) -> Path:
        """The broker's private key and certificate chain in one PEM file, as Kafka's PEM key store reads it."""
        return self.root / "keystore.pem"

    @property
    def formatted(self) -> bool:
        """Whether ``kafka-storage format`` has run: it writes meta.properties into the log dir."""
        return (self.data / "meta.properties").is_file()


@dataclass(frozen=True)
class KraftNode:
    """This broker's place in a multi-node KRaft quorum: every node is broker and controller.

    ``voters`` is the static ``controller.quorum.voters`` of the whole quorum and ``cluster_id`` is shared:
    nodes formatted with different ids refuse to form one cluster.
    """

    node_id: int
    voters: str
    cluster_id: str

    @property
    def size(self) -> int:
        return len(self.voters.split(","))


@dataclass(frozen=True)
class SecureListener:
    """A listener beside the PLAINTEXT one, on the broker's host: TLS (``SSL``) or SASL over TLS (``SASL_SSL``).

    ``client_auth``: mutual TLS, a client must show a certificate the broker's client CA signed.
    """

    name: str
    port: int
    protocol: Literal["SSL", "SASL_SSL"]
    sasl_mechanisms: tuple[Literal["SCRAM-SHA-256", "SCRAM-SHA-512"], ...] = ()
    client_auth: bool = False


@dataclass(frozen=True)
class ScramCredential:
    """A SCRAM user, written into the KRaft metadata when the storage is formatted (``--add-scram``): a broker
    formatted before does not learn users added later."""

    mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512"]
    username: str
    password: str

    def __post_init__(self) -> None:
        # The storage tool's own syntax (name=...,password=...) has no quoting for these characters.
        for value in (self.username, self.password):
            if not value or any(char in value for char in '[]=,"\\ '):
                raise ValueError('a SCRAM username or password must be non-empty, without spaces or any of []=,"\\')

    @property
    def format_argument(self) -> str:
        return f"{self.mechanism}=[name={self.username},password={self.password}]"


@dataclass(frozen=True)
class BrokerSecurity:
    """The broker's secure listeners, its TLS identity (PEM files: certificate chain and PKCS#8 key, the CA of
    client certificates) and its SCRAM users.

    ``acls``: Kafka's StandardAuthorizer decides what each login may do, as on a team's cluster: a secure
    listener's login may do only what an ACL allows it. The PLAINTEXT and controller listeners (loopback, the
    broker's own traffic) log in as ``User:ANONYMOUS``, the super user that grants those ACLs.
    """

    listeners: tuple[SecureListener, ...]
    certificate: Path
    key: Path
    client_ca: Path | None = None
    scram_credentials: tuple[ScramCredential, ...] = ()
    acls: bool = False


def random_cluster_id() -> str:
    """A cluster id as Kafka's ``Uuid.randomUuid().toString()`` makes it: 16 random bytes, URL-safe base64.

    Kafka rejects ids that start with '-' (they read as command-line flags), so those are drawn again.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def server_properties(
    settings: Settings, files: BrokerFiles, node: KraftNode | None = None, security: BrokerSecurity | None = None
) -> str:
    """The broker's configuration: one combined broker+controller node on loopback, alone or one of ``node``'s
    quorum, with ``security``'s listeners beside its PLAINTEXT one."""
    kafka = settings.kafka
    host = kafka.host
    node_id = NODE_ID if node is None else node.node_id
    properties = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": f"{NODE_ID}@{host}:{kafka.controller_port}" if node is None else node.voters,
        "listeners": f"PLAINTEXT://{host}:{kafka.port},CONTROLLER://{host}:{kafka.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{kafka.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(files.data),
        "num.partitions": str(kafka.partitions),
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        # Topics are created on purpose (rtap.ingest.topics.ensure_topics) with their partition count
        # checked; a typo in a topic name must fail, not silently create a one-off topic.
        "auto.create.topics.enable": "false",
        # A single node cannot hold more replicas of the internal topics than one.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # 50 offset partitions (the default) make the first consumer group wait for 50 leaders to be
        # elected; one machine gains nothing from more than a few.
        "offsets.topic.num.partitions": "4",
        "group.initial.rebalance.delay.ms": "0",
        "log.retention.hours": str(kafka.retention_hours),
    }
    if node is not None and node.size > 1:
        # Internal topics survive the loss of one node and refuse writes that only one replica holds.
        replicas, in_sync = str(min(3, node.size)), str(min(2, node.size))
        properties |= {
            "default.replication.factor": str(kafka.replication_factor),
            "min.insync.replicas": str(kafka.min_insync_replicas),
            "offsets.topic.replication.factor": replicas,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": in_sync,
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": in_sync,
        }
    if security is not None:
        properties |= _secure_listeners(host, files, security, properties)
        if security.acls:
            properties |= {
                "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                "super.users": "User:ANONYMOUS",
            }
    header = "# Written by rtap on every start of the local broker; edit the RTAP_KAFKA_* settings instead.\n"
    return header + "".join(f"{key}={value}\n" for key, value in properties.items())


def _secure_listeners(host: str, files: BrokerFiles, security: BrokerSecurity, plain: dict[str, str]) -> dict[str, str]:
    """The properties that add ``security``'s listeners, each configured under its own ``listener.name.`` prefix
    so that the PLAINTEXT listener stays as it was."""
    addresses = [f"{listener.name}://{host}:{listener.port}" for listener in security.listeners]
    protocols = [f"{listener.name}:{listener.protocol}" for listener in security.listeners]
    properties = {
        "listeners": ",".join([plain["listeners"], *addresses]),
        "advertised.listeners": ",".join([plain["advertised.listeners"], *addresses]),
        "listener.security.protocol.map": ",".join([plain["listener.security.protocol.map"], *protocols]),
    }
    for listener in security.listeners:
        prefix = f"listener.name.{listener.name.lower()}."
        properties |= {
            f"{prefix}ssl.keystore.type": "PEM",
            f"{prefix}ssl.keystore.location": str(files.keystore),
            f"{prefix}ssl.client.auth": "required" if listener.client_auth else "none",
        }
        if security.client_ca is not None:
            properties |= {
                f"{prefix}ssl.truststore.type": "PEM",
                f"{prefix}ssl.truststore.location": str(security.client_ca),
            }
        if listener.sasl_mechanisms:
            properties[f"{prefix}sasl.enabled.mechanisms"] = ",".join(listener.sasl_mechanisms)
        for mechanism in listener.sasl_mechanisms:
            properties[f"{prefix}{mechanism.lower()}.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            )
    return properties


def keystore_pem(security: BrokerSecurity) -> str:
    """The key and its certificate chain in one PEM text: Kafka's PEM key store file."""
    return security.key.read_text() + security.certificate.read_text()


def kafka_classpath(settings: Settings) -> str:
    """The broker's class path: a Kafka distribution's libs/ if one is configured, else rtap's Maven jars."""
    home = settings.kafka.home
    if home is not None:
        libs = home.expanduser() / "libs"
        if not any(libs.glob(BROKER_JAR_GLOB)):
            raise DependencyError(f"RTAP_KAFKA_HOME/KAFKA_HOME={home} is not an Apache Kafka distribution (no {libs})")
    else:
        libs = settings.jars_dir / "kafka"
        if not any(libs.glob(BROKER_JAR_GLOB)):
            raise DependencyError(f"the Kafka broker jars are missing from {libs}: run `make jars`")
    return str(libs / "*")


def java_command(java: str, settings: Settings, files: BrokerFiles, classpath: str) -> list[str]:
    """The JVM part of every command line: heap, GC, class-data sharing, logging, class path."""
    heap = settings.kafka.heap
    return [
        java,
        f"-Xms{heap}",
        f"-Xmx{heap}",
        *JVM_FLAGS,
        *class_sharing_options(settings, "kafka"),
        f"-Dlog4j2.configurationFile={files.log4j_config}",
        f"-Dkafka.logs.dir={files.root}",
        "-cp",
        classpath,
    ]


def format_command(
    base: list[str], files: BrokerFiles, cluster_id: str, scram_credentials: tuple[ScramCredential, ...] = ()
) -> list[str]:
    """``kafka-storage format``: writes the cluster id, the bootstrap metadata and the SCRAM users into the log
    dir (KRaft keeps SCRAM credentials in its metadata log: they exist from the first start on)."""
    scram = [arg for credential in scram_credentials for arg in ("--add-scram", credential.format_argument)]
    return [
        *base, STORAGE_TOOL_MAIN, "format", "--config", str(files.server_properties), "--cluster-id", cluster_id, *scram
    ]  # fmt: skip


def broker_command(base: list[str], files: BrokerFiles) -> list[str]:
    return [*base, BROKER_MAIN, str(files.server_properties)]
