"""All of rtap's configuration, typed, in one module.

Each component has its own settings class and its own environment prefix; this module is the only
place that knows environment variable names (deep code receives a settings object, never reads
``os.environ``). Values come from, in order: explicit arguments, ``RTAP_*`` environment variables,
a ``.env`` file in the working directory, then the defaults below. ``.env.example`` lists them all.
Secrets are ``SecretStr`` so they never appear in logs or reprs.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
import re
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import AliasChoices, BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LOOPBACK = "127.0.0.1"


def _config(prefix: str) -> SettingsConfigDict:
    # env_ignore_empty: a copied .env.example with blank values means "default", not "empty string".
    return SettingsConfigDict(
        env_prefix=prefix, env_file=".env", extra="ignore", validate_default=True, env_ignore_empty=True
    )


# librdkafka and Kafka's Java client read PKCS#8 keys; Java refuses the older PKCS#1 ("RSA PRIVATE KEY") and SEC1.
_PKCS8_KEYS = tuple(f"-----BEGIN {kind}-----" for kind in ("PRIVATE KEY", "ENCRYPTED PRIVATE KEY"))
# The DER of PBES2's object identifier (1.2.840.113549.1.5.13): OpenSSL 3 encrypts keys with it by default, and
# Java 17 (Spark's JVM) has no SecretKeyFactory for it, so Kafka's Java client cannot read such a key.
_PBES2_OID = bytes.fromhex("06092a864886f70d01050d")
# MSK's brokers: b-1.NAME.ID.c2.kafka.REGION.amazonaws.com, boot-ID.c1.kafka-serverless.REGION.amazonaws.com.
_MSK_HOST = re.compile(r"\.kafka(?:-serverless)?\.([a-z]{2}(?:-[a-z]+)+-\d+)\.amazonaws\.com(?:\.cn)?$")
_JAAS_LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}
MSK_IAM_LOGIN_MODULE = "software.amazon.msk.auth.iam.IAMLoginModule"
MSK_IAM_CALLBACK_HANDLER = "software.amazon.msk.auth.iam.IAMClientCallbackHandler"
# Spark's spark.redaction.regex, matched against the keys and the values of its settings and of a source's options:
# its default (secret|password|token|access.?key) and the Java client's secrets that it misses, a JAAS line (MSK
# IAM's has no "password" in it) and an inline PEM key (java_client_config).
JAVA_REDACTION_REGEX = r"(?i)secret|password|token|access[.]?key|jaas|keystore[.]key|private key"


def bootstrap_hosts(servers: str) -> list[str]:
    """The host of every ``host:port`` (or ``[v6]:port``) entry of a bootstrap list."""
    entries = [entry.strip() for entry in servers.split(",") if entry.strip()]
    return [entry.rpartition(":")[0].removeprefix("[").removesuffix("]") or entry for entry in entries]


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine's loopback interface (by address, bracketed or not, or as ``localhost``).
    Any other name is not: what it resolves to when checked may not be what it resolves to when bound."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return False


def connect_host(host: str) -> str:
    """Where a client on this machine reaches a server bound to ``host``: loopback for a wildcard address."""
    return LOOPBACK if host in ("0.0.0.0", "::", "") else host


def msk_region(servers: str) -> str | None:
    """The AWS region of an MSK bootstrap list, read from its brokers' host names; None for other hosts."""
    regions = {match.group(1) for host in bootstrap_hosts(servers) if (match := _MSK_HOST.search(host.lower()))}
    return regions.pop() if len(regions) == 1 else None


def _pbes2_encrypted(pem: str) -> bool:
    body = "".join(line.strip() for line in pem.splitlines() if line.strip() and not line.startswith("-----"))
    try:
        der = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return False
    return _PBES2_OID in der[:32]  # the algorithm identifier opens the structure


def _jaas_quoted(value: str) -> str:
    # JAAS options are double-quoted strings read by a StreamTokenizer, where backslash escapes.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def single_address(servers: str) -> tuple[str, int] | None:
    """``host:port`` (or ``[v6]:port``) of a bootstrap list naming exactly one broker, else None."""
    entries = [entry.strip() for entry in servers.split(",") if entry.strip()]
    if len(entries) != 1:
        return None
    host, sep, port = entries[0].rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host, int(port)


class KafkaSettings(BaseSettings):
    """Where the broker is and how rtap's topics look. Also drives the local broker (``rtap kafka``).

    One address, never two (issue #16): the local broker listens on ``host:port``, its clients connect to
    ``bootstrap_servers``. Set one side and the other follows; set both to different addresses and
    :meth:`local_listener_conflict` says so, which ``rtap kafka start`` and ``rtap up`` refuse with one line.
    """

    model_config = _config("RTAP_KAFKA_")

    bootstrap_servers: str = f"{LOOPBACK}:9092"
    topic: str = "clickstream.events"
    dlq_topic: str = "clickstream.events.dlq"
    # More input topics, each with its source format (rtap.contract.formats), read by the same job into the
    # same tables; rtap creates them with its other topics. JSON in the environment, e.g. for the previous
    # system's topic RTAP_KAFKA_SOURCE_TOPICS='{"clickstream_events": "legacy-click.v1"}' (docs/migrating.md).
    source_topics: dict[str, str] = Field(default_factory=dict)
    # What the collector (`rtap collect`) writes: the browser tracker's events, source format browser-event.v1.
    # Always one of the job's input topics.
    browser_topic: str = "clickstream.browser"
    partitions: int = Field(default=6, ge=1, le=1024)
    replication_factor: int = Field(default=1, ge=1)
    min_insync_replicas: int = Field(default=1, ge=1)
    retention_hours: int = Field(default=168, ge=1)
    # Local broker only: its listener (follows bootstrap_servers unless set), controller port and JVM heap.
    host: str = LOOPBACK
    port: int = Field(default=9092, ge=1, le=65535)
    controller_port: int = Field(default=9093, ge=1, le=65535)
    heap: str = "512m"
    # An Apache Kafka distribution to use instead of the Maven jars (the conventional KAFKA_HOME too).
    home: Path | None = Field(default=None, validation_alias=AliasChoices("RTAP_KAFKA_HOME", "KAFKA_HOME"))
    # How every Kafka client rtap makes connects (docs/kafka-security.md): librdkafka's and Spark's Java client
    # from these same settings (client_config, java_client_config). PLAINTEXT is for loopback and private networks.
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    # TLS (SSL, SASL_SSL): the CA that signed the brokers' certificates, PEM (empty: the system's CAs); for mutual
    # TLS the client's certificate and PKCS#8 key, PEM, and the key's password if it is encrypted.
    ssl_ca_file: Path | None = None
    ssl_certificate_file: Path | None = None
    ssl_key_file: Path | None = None
    ssl_key_password: SecretStr | None = None
    # Whether a broker's certificate must name the host connected to. Off only for brokers whose certificates lack
    # the addresses clients use: a certificate any CA-signed host holds would then pass.
    ssl_endpoint_identification: bool = True
    # SASL (SASL_SSL, SASL_PLAINTEXT): PLAIN and SCRAM with a username and password; AWS_MSK_IAM signs with the
    # AWS credentials of the environment (OAUTHBEARER tokens in librdkafka, the aws-msk-iam-auth jar in Java).
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "AWS_MSK_IAM"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    # AWS_MSK_IAM only: the cluster's region (empty: read from the brokers' host names, *.kafka.REGION.amazonaws.com)
    # and a named profile of the AWS configuration (empty: the default credential chain).
    aws_region: str | None = None
    aws_profile: str | None = None

    @model_validator(mode="after")
    def _one_address(self) -> Self:
        given = self.model_fields_set
        listener_given = bool({"host", "port"} & given)
        if "bootstrap_servers" in given and not listener_given:
            address = single_address(self.bootstrap_servers)
            if address is not None:
                self.host, self.port = address
        elif listener_given and "bootstrap_servers" not in given:
            host = f"[{self.host}]" if ":" in self.host else self.host
            self.bootstrap_servers = f"{host}:{self.port}"
        return self

    @model_validator(mode="after")
    def _known_formats(self) -> Self:
        from rtap.contract.model import known_format  # light: `rtap sql` loads settings, not the validators
        from rtap.errors import RtapError

        if self.browser_topic in (self.topic, self.dlq_topic):
            raise ValueError(f"browser topic {self.browser_topic} is already the input or the dead-letter topic")
        for name, source_format in self.source_topics.items():
            if name in (self.topic, self.dlq_topic, self.browser_topic):
                raise ValueError(f"source topic {name} is already the input, the browser or the dead-letter topic")
            for other in (self.topic, self.dlq_topic, self.browser_topic):
                # Kafka refuses a topic whose name equals another's once '.' is read as '_' (metric names).
                if name.replace(".", "_") == other.replace(".", "_"):
                    raise ValueError(
                        f"topics {name} and {other} collide in Kafka ('.' and '_' are one character in its metric "
                        f"names): it refuses to create the second; give rtap's own topic another name, e.g. "
                        f"RTAP_KAFKA_TOPIC={other}.v1 (docs/migrating.md)"
                    )
            try:
                known_format(source_format)
            except RtapError as exc:  # reported as a settings error, like any other bad value
                raise ValueError(str(exc)) from exc
        return self

    @model_validator(mode="after")
    def _coherent_security(self) -> Self:
        """Security settings that cannot work, or would not do what they say, are refused here in one line each,
        before any client tries them against a broker."""
        protocol, mechanism = self.security_protocol, self.sasl_mechanism
        tls = protocol in ("SSL", "SASL_SSL")
        if protocol.startswith("SASL_") and mechanism is None:
            raise ValueError(
                f"RTAP_KAFKA_SECURITY_PROTOCOL={protocol} needs RTAP_KAFKA_SASL_MECHANISM "
                "(PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or AWS_MSK_IAM)"
            )
        if mechanism is not None and not protocol.startswith("SASL_"):
            raise ValueError(
                f"RTAP_KAFKA_SASL_MECHANISM={mechanism} takes effect only with RTAP_KAFKA_SECURITY_PROTOCOL=SASL_SSL "
                f"(or SASL_PLAINTEXT), not {protocol}"
            )
        if mechanism in _JAAS_LOGIN_MODULES:
            if not self.sasl_username or not self._sasl_password:
                raise ValueError(
                    f"RTAP_KAFKA_SASL_MECHANISM={mechanism} needs RTAP_KAFKA_SASL_USERNAME and RTAP_KAFKA_SASL_PASSWORD"
                )
            if any(c in value for value in (self.sasl_username, self._sasl_password) for c in "\r\n"):
                raise ValueError("RTAP_KAFKA_SASL_USERNAME and RTAP_KAFKA_SASL_PASSWORD cannot span lines")
        if mechanism == "PLAIN" and not tls and not all(map(is_loopback, bootstrap_hosts(self.bootstrap_servers))):
            raise ValueError(
                f"SASL PLAIN over {protocol} would send the password in clear text to {self.bootstrap_servers}: "
                "use RTAP_KAFKA_SECURITY_PROTOCOL=SASL_SSL"
            )
        self._check_msk_iam()
        self._check_tls_files(tls)
        return self

    def _check_msk_iam(self) -> None:
        if self.sasl_mechanism != "AWS_MSK_IAM":
            if self.aws_region or self.aws_profile:
                raise ValueError(
                    "RTAP_KAFKA_AWS_REGION and RTAP_KAFKA_AWS_PROFILE are for RTAP_KAFKA_SASL_MECHANISM=AWS_MSK_IAM"
                )
            return
        if self.security_protocol != "SASL_SSL":
            raise ValueError(
                "RTAP_KAFKA_SASL_MECHANISM=AWS_MSK_IAM needs RTAP_KAFKA_SECURITY_PROTOCOL=SASL_SSL (MSK: port 9098)"
            )
        if self.sasl_username or self.sasl_password is not None:
            raise ValueError(
                "AWS_MSK_IAM signs with the AWS credentials of the environment: unset RTAP_KAFKA_SASL_USERNAME "
                "and RTAP_KAFKA_SASL_PASSWORD"
            )
        if self.aws_region is None and msk_region(self.bootstrap_servers) is None:
            raise ValueError(
                f"no AWS region in the broker names {self.bootstrap_servers}: set RTAP_KAFKA_AWS_REGION for AWS_MSK_IAM"
            )

    def _check_tls_files(self, tls: bool) -> None:
        files = {
            "RTAP_KAFKA_SSL_CA_FILE": self.ssl_ca_file,
            "RTAP_KAFKA_SSL_CERTIFICATE_FILE": self.ssl_certificate_file,
            "RTAP_KAFKA_SSL_KEY_FILE": self.ssl_key_file,
        }
        given = [name for name, path in files.items() if path is not None]
        if self.ssl_key_password is not None:
            given.append("RTAP_KAFKA_SSL_KEY_PASSWORD")
        if given and not tls:
            raise ValueError(
                f"{', '.join(given)} take effect only with RTAP_KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL, "
                f"not {self.security_protocol}"
            )
        for name, path in files.items():
            if path is not None and not path.is_file():
                raise ValueError(f"{name}={path}: no such file")
        if (self.ssl_certificate_file is None) != (self.ssl_key_file is None):
            raise ValueError(
                "a client certificate needs both RTAP_KAFKA_SSL_CERTIFICATE_FILE and RTAP_KAFKA_SSL_KEY_FILE"
            )
        if self.ssl_key_password is not None and self.ssl_key_file is None:
            raise ValueError("RTAP_KAFKA_SSL_KEY_PASSWORD without RTAP_KAFKA_SSL_KEY_FILE")
        if self.ssl_key_file is not None:
            key = self.ssl_key_file.read_text(errors="replace")
            if not key.lstrip().startswith(_PKCS8_KEYS):
                raise ValueError(
                    f"RTAP_KAFKA_SSL_KEY_FILE={self.ssl_key_file} is not a PKCS#8 PEM key, which Kafka's Java client "
                    "needs: convert it with `openssl pkcs8 -topk8 -v1 PBE-SHA1-3DES -in KEY -out KEY.p8` (-nocrypt "
                    "instead of -v1 ... to leave it unencrypted)"
                )
            if key.lstrip().startswith(_PKCS8_KEYS[1]) and self.ssl_key_password is None:
                raise ValueError(
                    f"RTAP_KAFKA_SSL_KEY_FILE={self.ssl_key_file} is encrypted: set RTAP_KAFKA_SSL_KEY_PASSWORD"
                )
            if _pbes2_encrypted(key):
                raise ValueError(
                    f"RTAP_KAFKA_SSL_KEY_FILE={self.ssl_key_file} is encrypted with PBES2 (OpenSSL 3's default), which "
                    "Spark's Kafka client cannot decrypt on Java 17: re-encrypt it with `openssl pkcs8 -topk8 -v1 "
                    "PBE-SHA1-3DES -in KEY -out KEY.p8`, or leave it unencrypted, readable by its owner only"
                )

    @property
    def input_topics(self) -> dict[str, str]:
        """Every topic the stream job reads, with the source format it carries: the contract-v1 topic first, then
        the collector's, then the configured source topics."""
        from rtap.contract.model import BROWSER_FORMAT, NATIVE_FORMAT

        return {self.topic: NATIVE_FORMAT, self.browser_topic: BROWSER_FORMAT, **self.source_topics}

    def local_listener_conflict(self) -> str | None:
        """Why a local broker on ``host:port`` would not be the broker the clients reach, or None."""
        address = single_address(self.bootstrap_servers)
        if address is None:
            return (
                f"RTAP_KAFKA_BOOTSTRAP_SERVERS={self.bootstrap_servers} does not name one broker, and the local "
                "broker is one: give its single host:port (several local brokers: `rtap cluster up`)"
            )
        if address != (self.host, self.port):
            return (
                f"RTAP_KAFKA_BOOTSTRAP_SERVERS={self.bootstrap_servers} but RTAP_KAFKA_HOST/RTAP_KAFKA_PORT put the "
                f"local broker on {self.host}:{self.port}, where no client would look; set only "
                "RTAP_KAFKA_BOOTSTRAP_SERVERS (the local broker listens there)"
            )
        return None

    @property
    def names_local_broker(self) -> bool:
        """Whether the clients' address could be the local broker's (``rtap kafka start``): one loopback address, the
        listener's, PLAINTEXT. Anything else is a cluster rtap does not run."""
        address = single_address(self.bootstrap_servers)
        return (
            address is not None
            and is_loopback(address[0])
            and self.security_protocol == "PLAINTEXT"
            and self.local_listener_conflict() is None
        )

    def plaintext_at(self, bootstrap_servers: str) -> KafkaSettings:
        """These settings pointed at a PLAINTEXT listener (the local broker's own): no TLS, no SASL."""
        security = ("ssl_ca_file", "ssl_certificate_file", "ssl_key_file", "ssl_key_password", "sasl_mechanism")
        cleared = dict.fromkeys((*security, "sasl_username", "sasl_password", "aws_region", "aws_profile"))
        update = {"bootstrap_servers": bootstrap_servers, "security_protocol": "PLAINTEXT", **cleared}
        return self.model_copy(update=update)

    @property
    def _sasl_password(self) -> str:
        return "" if self.sasl_password is None else self.sasl_password.get_secret_value()

    @property
    def msk_iam_region(self) -> str | None:
        """The region MSK IAM signs for: the setting, else the brokers' host names; None without AWS_MSK_IAM."""
        if self.sasl_mechanism != "AWS_MSK_IAM":
            return None
        return self.aws_region or msk_region(self.bootstrap_servers)

    def client_config(self) -> dict[str, Any]:
        """librdkafka's (confluent-kafka's) properties shared by every Kafka client rtap makes in Python.

        AWS_MSK_IAM is librdkafka's OAUTHBEARER with a token callback that signs with the environment's AWS
        credentials (:mod:`rtap.msk_iam`, the optional ``rtap[msk]`` package).

        TCP_NODELAY on every broker socket (``socket.nagle.disable``), as Kafka's Java client always sets it:
        librdkafka leaves Nagle's algorithm on by default, and then a small request written while an earlier
        segment is unacknowledged waits for the broker's (possibly delayed) TCP ACK. Measured on the collector
        under load (B25, 16-48 connections): p99 4-6 ms lower with it (``bench/README.md``). The producer's own
        batching is ``linger.ms``; the kernel's adds only latency.
        """
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
            "socket.nagle.disable": True,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            config["ssl.endpoint.identification.algorithm"] = "https" if self.ssl_endpoint_identification else "none"
            if self.ssl_ca_file is not None:
                config["ssl.ca.location"] = str(self.ssl_ca_file)
            if self.ssl_certificate_file is not None and self.ssl_key_file is not None:
                config["ssl.certificate.location"] = str(self.ssl_certificate_file)
                config["ssl.key.location"] = str(self.ssl_key_file)
            if self.ssl_key_password is not None:
                config["ssl.key.password"] = self.ssl_key_password.get_secret_value()
        if self.sasl_mechanism in _JAAS_LOGIN_MODULES:
            config["sasl.mechanism"] = self.sasl_mechanism
            config["sasl.username"] = self.sasl_username
            config["sasl.password"] = self._sasl_password
        elif self.sasl_mechanism == "AWS_MSK_IAM":
            from rtap.msk_iam import token_callback

            assert self.msk_iam_region is not None  # checked by _check_msk_iam
            config["sasl.mechanism"] = "OAUTHBEARER"
            config["oauth_cb"] = token_callback(self.msk_iam_region, self.aws_profile)
        return config

    def java_client_config(self) -> dict[str, str]:
        """The same connection in the properties of Kafka's Java client, which Spark's Kafka source is (as
        ``kafka.``-prefixed options): SASL as a JAAS line, TLS as PEM text.

        The PEM files' contents go inline (``ssl.truststore.certificates``, ``ssl.keystore.key``...) rather than
        their paths: Spark's executors, on a cluster other machines, read them from the options and need no copy
        of the files. Secrets here are hidden from Spark's logs and UI by ``JAVA_REDACTION_REGEX``
        (``spark.redaction.regex``, set by :func:`rtap.stream.spark.build_session`).
        """
        config = {"bootstrap.servers": self.bootstrap_servers, "security.protocol": self.security_protocol}
        if self.security_protocol in ("SSL", "SASL_SSL"):
            config["ssl.endpoint.identification.algorithm"] = "https" if self.ssl_endpoint_identification else ""
            if self.ssl_ca_file is not None:
                config["ssl.truststore.type"] = "PEM"
                config["ssl.truststore.certificates"] = self.ssl_ca_file.read_text()
            if self.ssl_certificate_file is not None and self.ssl_key_file is not None:
                config["ssl.keystore.type"] = "PEM"
                config["ssl.keystore.certificate.chain"] = self.ssl_certificate_file.read_text()
                config["ssl.keystore.key"] = self.ssl_key_file.read_text()
            if self.ssl_key_password is not None:
                config["ssl.key.password"] = self.ssl_key_password.get_secret_value()
        if self.sasl_mechanism in _JAAS_LOGIN_MODULES:
            username, password = _jaas_quoted(self.sasl_username or ""), _jaas_quoted(self._sasl_password)
            config["sasl.mechanism"] = self.sasl_mechanism
            config["sasl.jaas.config"] = (
                f"{_JAAS_LOGIN_MODULES[self.sasl_mechanism]} required username={username} password={password};"
            )
        elif self.sasl_mechanism == "AWS_MSK_IAM":
            profile = f" awsProfileName={_jaas_quoted(self.aws_profile)}" if self.aws_profile else ""
            config["sasl.mechanism"] = "AWS_MSK_IAM"
            config["sasl.jaas.config"] = f"{MSK_IAM_LOGIN_MODULE} required{profile};"
            config["sasl.client.callback.handler.class"] = MSK_IAM_CALLBACK_HANDLER
        return config


class ProducerSettings(BaseSettings):
    """Throughput/durability trade-offs of ``rtap produce``: durable by default, batched for speed."""

    model_config = _config("RTAP_PRODUCER_")

    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "lz4"
    linger_ms: int = Field(default=20, ge=0)
    batch_bytes: int = Field(default=1_000_000, ge=1)
    queue_max_messages: int = Field(default=500_000, ge=1)


class GeneratorSettings(BaseSettings):
    """The simulated shop: its size, and how much dirt it mixes into the stream."""

    model_config = _config("RTAP_GEN_")

    seed: int = 42
    users: int = Field(default=5_000, ge=1)
    pages: int = Field(default=200, ge=1)
    products: int = Field(default=500, ge=1)
    zipf_s: float = Field(default=1.1, gt=0)
    bot_share: float = Field(default=0.01, ge=0, le=1)
    duplicate_rate: float = Field(default=0.01, ge=0, le=0.5)
    late_rate: float = Field(default=0.005, ge=0, le=0.5)
    late_by_seconds: float = Field(default=120.0, gt=0)
    malformed_rate: float = Field(default=0.005, ge=0, le=0.5)
    daily_curve: bool = False


class WarehouseSettings(BaseSettings):
    """ClickHouse: embedded chDB (default, data in the rtap data directory) or a server."""

    model_config = _config("RTAP_CLICKHOUSE_")

    backend: Literal["chdb", "server"] = "chdb"
    database: str = Field(default="rtap", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    host: str = LOOPBACK
    port: int = Field(default=8123, ge=1, le=65535)
    secure: bool = False
    user: str = "default"
    password: SecretStr = SecretStr("")
    # The read-only account dashboards and `rtap sql` use against a server.
    readonly_user: str = "rtap_reader"
    readonly_password: SecretStr = SecretStr("")
    connect_timeout_s: float = Field(default=10.0, gt=0)
    query_timeout_s: float = Field(default=60.0, gt=0)
    # The limits of every read (dashboards, `rtap sql`, the chDB socket, reconcile): the engine stops a read at
    # this time and memory (and a result of this size), and runs it on at most this many threads (one: a read
    # never takes every core of a small machine from the job's writes). chDB: its read-only connection; a server:
    # the reader's profile, which deploy/compose/clickhouse/users.d/rtap-users.xml sets to these defaults (a test
    # checks). A query may tighten them, never lift them.
    read_max_execution_time_s: float = Field(default=30.0, gt=0)
    read_max_memory_bytes: int = Field(default=256 * 1024 * 1024, ge=16 * 1024 * 1024)
    read_max_threads: int = Field(default=1, ge=1)
    # chDB: the nice value of its background merge threads in the process that owns the data (the job's), so a
    # merge runs when a micro-batch leaves the cores free (rtap.warehouse.chdb.merges); 0 (the default): the job's
    # own priority, until a long run shows merges keep up at a higher one. A server schedules its own merges.
    merge_nice: int = Field(default=0, ge=0, le=19)
    # A server cluster (docs/clickhouse-server.md): migrations run ON CLUSTER this name (a name from the servers'
    # remote_servers, or a macro such as {cluster}) and make Replicated*MergeTree tables at replica_path, named
    # replica_name (ClickHouse expands the {shard}, {replica}, {database} and {table} macros). Empty: one server.
    cluster: str = Field(default="", pattern=r"^[A-Za-z0-9_.{}-]*$")
    replica_path: str = Field(default="/clickhouse/tables/{shard}/{database}/{table}", pattern=r"^[^'\\]+$")
    replica_name: str = Field(default="{replica}", pattern=r"^[^'\\]+$")
    # The stream job's writes on a server: insert_quorum of every INSERT (auto: a majority of the replicas; the
    # replica count: every replica, so no read meets a replica outside the quorum). Its reads of what it wrote run
    # with select_sequential_consistency (rtap.warehouse.server.client.writer_settings).
    insert_quorum: str = Field(default="auto", pattern=r"^(auto|[0-9]+)$")
    # Retention in days, applied by every migrate (ALTER TABLE ... MODIFY TTL when a table's differs); 0 keeps
    # rows forever. events also sets event_ids (the duplicate lookup must remember what events holds).
    retention_events_days: int = Field(default=30, ge=0)
    retention_late_events_days: int = Field(default=30, ge=0)
    retention_dead_letters_days: int = Field(default=30, ge=0)
    retention_pipeline_batches_days: int = Field(default=90, ge=0)

    @model_validator(mode="after")
    def _cluster_needs_a_server(self) -> Self:
        if self.cluster and self.backend != "server":
            raise ValueError("RTAP_CLICKHOUSE_CLUSTER needs RTAP_CLICKHOUSE_BACKEND=server (chDB is one process)")
        return self


class StreamSettings(BaseSettings):
    """The Spark job: where it runs and its event-time semantics."""

    model_config = _config("RTAP_STREAM_")

    master: str = "local[*]"
    app_name: str = "rtap-stream"
    watermark_delay_s: float = Field(default=30.0, ge=0)
    session_gap_s: float = Field(default=1800.0, gt=0)
    # 0: each micro-batch starts as soon as the previous one has committed (freshness is then about two
    # batch durations); with no new data the job asks Kafka again every poll_interval_s.
    trigger_interval_s: float = Field(default=0.0, ge=0)
    poll_interval_s: float = Field(default=0.1, gt=0)
    # A micro-batch is at most max_batch_records records and, by the record size the last batches had, about
    # max_batch_bytes of payload: what one batch brings into the driver (rtap.stream.caps).
    max_batch_records: int = Field(default=200_000, ge=1)
    max_batch_bytes: int = Field(default=128 * 1024 * 1024, ge=1024 * 1024)
    starting_offsets: Literal["earliest", "latest"] = "earliest"
    # Records Kafka deleted (retention) before the job read them stop the job; true skips them, recorded
    # in the warehouse's data_gaps table and reported by `rtap reconcile` (docs/operations.md).
    accept_data_loss: bool = False
    bot_clicks_per_minute: int = Field(default=60, ge=1)
    # Records larger than this go to the dead letters instead of being parsed; a dead letter keeps at most
    # this many bytes of its payload (and its real size), in dead_letters and on the dead-letter topic.
    max_record_bytes: int = Field(default=65_536, ge=256, le=256 * 1024)  # key and value cut: < 1 MB on the DLQ
    # event_time later than the Kafka record's timestamp (the broker's clock on rtap's topics: LogAppendTime)
    # by more than this is a dead letter. An event less far ahead is accepted but moves its partition's
    # watermark no further than its record's timestamp (rtap.stream.transforms), so no client clock can make
    # other records late; this bound only keeps absurd times out of the windows.
    max_future_skew_s: float = Field(default=900.0, ge=0)
    shuffle_partitions: int = Field(default=2, ge=1)
    driver_memory: str = "1g"
    # Failures in a row (a failed batch, Spark's JVM dying) before the job gives up; a committed batch resets it.
    max_consecutive_failures: int = Field(default=5, ge=1)
    # The Python the executors run the parse stage with (rtap and its packages installed); empty: this one.
    python: str | None = None
    # Address the Spark UI (and, in local mode, the driver) listens on. Inside a container: 0.0.0.0. Beyond
    # loopback only with ui_secret: every UI request must then present a token signed with it (rtap.stream.ui).
    ui_host: str = LOOPBACK
    ui_secret: SecretStr | None = None

    @field_validator("ui_secret")
    @classmethod
    def _a_key_spark_accepts(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None and len(secret.get_secret_value().encode()) < 32:
            raise ValueError("at least 32 characters: Spark takes it as an HS256 key, of 256 bits or more")
        return secret


def _ip_networks(proxies: list[str]) -> list[str]:
    """A trusted-proxies list (the collector's, the dashboard's): each entry an IP address or network."""
    import ipaddress

    for proxy in proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError as exc:
            raise ValueError(f"{proxy!r} is not an IP address or network") from exc
    return proxies


class DashboardSettings(BaseSettings):
    """The built-in web dashboard. Loopback by default: exposing it is a deliberate choice."""

    model_config = _config("RTAP_DASHBOARD_")

    host: str = LOOPBACK
    port: int = Field(default=8050, ge=1, le=65535)
    # The widest range a panel may be asked for (the page offers at most 24 h).
    max_range_hours: int = Field(default=24, ge=1)
    # A panel's query is stopped after this long (at most RTAP_CLICKHOUSE_READ_MAX_EXECUTION_TIME_S).
    query_timeout_s: float = Field(default=10.0, ge=1)
    # Admission: at most this many panel queries run at once; a request waits at most queue_timeout_s for one
    # of them, then gets 503 + Retry-After. Under chDB every query holds the engine the job writes through.
    max_concurrent_queries: int = Field(default=2, ge=1, le=64)
    queue_timeout_s: float = Field(default=2.0, ge=0)
    # One result per panel and range serves every viewer for this long (a range wider than an hour or a panel
    # refreshed less often: longer, rtap.dashboard.api.cache_step_s); a range ending now is aligned to it, so
    # viewers whose clocks differ by less share it (0: no sharing).
    cache_ttl_s: float = Field(default=5.0, ge=0)
    # Per client address: client_requests_per_s after a burst of client_burst (a page load asks for ~7 things
    # at once, then its due panels in one request about every 2 s); beyond that 429 + Retry-After before any
    # routing or query. At most limiter_entries addresses are remembered (bounded memory; the oldest is forgotten).
    client_requests_per_s: float = Field(default=5.0, gt=0)
    client_burst: int = Field(default=30, ge=1)
    limiter_entries: int = Field(default=10_000, ge=1)
    # Behind a TLS or login proxy every viewer arrives from the proxy's address: list it (JSON, e.g.
    # ["10.0.0.0/8"]) and the rate is per address in its X-Forwarded-For instead (rtap.addresses).
    trusted_proxies: list[str] = Field(default_factory=list)
    # The login beyond loopback (rtap.dashboard.auth): without one of these the dashboard refuses any other
    # address. The password (also what `rtap validate` logs in with), or its hash from
    # `rtap dashboard --hash-password` so the server's environment holds no password.
    password: SecretStr | None = None
    password_hash: SecretStr | None = None
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    # The password travels in the login form: beyond loopback the dashboard speaks TLS itself with this
    # certificate and key (PEM), or sits behind a TLS proxy listed in trusted_proxies.
    tls_certificate_file: Path | None = None
    tls_key_file: Path | None = None
    # Without TLS of its own, a login in plain HTTP from a peer that is neither loopback nor a trusted proxy
    # saying https is refused, unless the port is reachable only from this host (compose: published on loopback).
    private_network: bool = False

    _networks = field_validator("trusted_proxies")(_ip_networks)

    @model_validator(mode="after")
    def _tls_files_together(self) -> Self:
        if (self.tls_certificate_file is None) != (self.tls_key_file is None):
            raise ValueError("RTAP_DASHBOARD_TLS_CERTIFICATE_FILE and RTAP_DASHBOARD_TLS_KEY_FILE go together")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_certificate_file is not None


class MetricsSettings(BaseSettings):
    """The Prometheus endpoint of every long-running rtap process (``rtap.metrics``). Loopback by default,
    like the dashboard. One endpoint per process: ``rtap up`` runs the job, the dashboard and the generator
    in one process and serves all their metrics on ``port``; run alone, each command has its own default
    port so they can run side by side on one machine. Port 0 picks a free port."""

    model_config = _config("RTAP_METRICS_")

    enabled: bool = True
    host: str = LOOPBACK
    port: int = Field(default=9464, ge=0, le=65535)  # `rtap up` and `rtap stream`
    dashboard_port: int = Field(default=9465, ge=0, le=65535)  # `rtap dashboard`
    producer_port: int = Field(default=9466, ge=0, le=65535)  # `rtap produce`
    # With a password every scrape must carry it (HTTP basic auth, Prometheus' basic_auth), here and on the
    # collector's /metrics; beyond loopback rtap listens only with one. With a certificate and key (PEM) the
    # endpoint speaks TLS, so the password does not cross a network in clear (docs/security.md).
    username: str = "prometheus"
    password: SecretStr | None = None
    tls_certificate_file: Path | None = None
    tls_key_file: Path | None = None
    # Without TLS, beyond loopback only on a network that never leaves this host (compose's bridge), said here.
    private_network: bool = False

    @model_validator(mode="after")
    def _authenticated_beyond_loopback(self) -> MetricsSettings:
        if self.enabled and self.password is None and not is_loopback(self.host):
            raise ValueError(
                f"RTAP_METRICS_HOST={self.host} is beyond loopback, where anyone could read rtap's metrics: set "
                "RTAP_METRICS_PASSWORD (Prometheus scrapes with basic_auth) or keep RTAP_METRICS_HOST=127.0.0.1"
            )
        if (
            self.enabled
            and not is_loopback(self.host)
            and self.tls_certificate_file is None
            and not self.private_network
        ):
            raise ValueError(
                f"RTAP_METRICS_HOST={self.host}: the scrape password would cross the network in clear: set "
                "RTAP_METRICS_TLS_CERTIFICATE_FILE and RTAP_METRICS_TLS_KEY_FILE, or RTAP_METRICS_PRIVATE_NETWORK=true "
                "if that network never leaves this host (a compose bridge)"
            )
        if not self.username or ":" in self.username:
            raise ValueError(f"RTAP_METRICS_USERNAME={self.username!r}: basic auth needs a name without ':'")
        if (self.tls_certificate_file is None) != (self.tls_key_file is None):
            raise ValueError("RTAP_METRICS_TLS_CERTIFICATE_FILE and RTAP_METRICS_TLS_KEY_FILE go together")
        return self


class AlertSettings(BaseSettings):
    """Thresholds of the Prometheus alert rules (``rtap metrics rules``, deploy/prometheus/rules.yml).

    The defaults are the ones the rest of rtap already judges health by: ``rtap status`` calls the job
    stalled after ``stall_after_s`` without a batch while records wait, and ``rtap validate`` calls data
    stale past 60 s (``ValidationOptions.freshness_s``).
    """

    model_config = _config("RTAP_ALERT_")

    # No batch committed for this long while the input topic has records the job has not processed.
    stall_after_s: float = Field(default=60.0, gt=0)
    # 99th percentile of per-event freshness (event_time -> commit) over `window_s`.
    freshness_p99_s: float = Field(default=60.0, gt=0)
    # Kafka lag rising for this long.
    lag_growing_for_s: float = Field(default=600.0, gt=0)
    # Dead letters as a share of the records read over `window_s` (the generator's own dirt is 0.5%).
    dead_letter_share: float = Field(default=0.05, gt=0, le=1)
    # This many restarts of the stream job (query or process) within `restarts_window_s`.
    restarts: int = Field(default=3, ge=1)
    restarts_window_s: float = Field(default=900.0, gt=0)
    # A gap recorded in data_gaps keeps its alert firing this long (the loss itself is permanent).
    data_gap_window_s: float = Field(default=3600.0, gt=0)
    # The collector (rtap collect): its share of 5xx answers (503: Kafka unavailable, the queue full), its share of
    # events refused for good (4xx: bad keys, origins, sizes), and the 99th percentile of the time to Kafka's ack.
    collect_unavailable_share: float = Field(default=0.05, gt=0, le=1)
    collect_refused_share: float = Field(default=0.2, gt=0, le=1)
    collect_ack_p99_s: float = Field(default=1.0, gt=0)
    # The rate window of the freshness, dead-letter and collector rules, and how long they must hold.
    window_s: float = Field(default=300.0, gt=0)


class SiteKey(BaseModel):
    """One site's write key entry: the site's name (stamped on its events) and the browser origins allowed to
    send with the key (``scheme://host[:port]``, as a browser's ``Origin`` header spells it)."""

    site: str = Field(min_length=1, max_length=128)
    origins: list[str] = Field(default_factory=list)

    @field_validator("origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            scheme, sep, rest = origin.partition("://")
            if scheme not in ("http", "https") or not sep or not rest or "/" in rest or origin != origin.strip():
                raise ValueError(
                    f"{origin!r} is not an origin: scheme://host[:port], no path (e.g. https://shop.example)"
                )
        return [origin.lower() for origin in origins]


#: The write key ``rtap up`` and ``rtap collect`` use when none is configured: for the demo shop the collector
#: serves itself, so its only origins are the collector's own loopback addresses (rtap.collect.keys).
DEMO_WRITE_KEY = "rtap-demo"


class CollectorSettings(BaseSettings):
    """The HTTP collector (``rtap collect``, docs/collector.md): where it listens, the write keys it accepts, its
    limits and its producer. Loopback by default; beyond loopback only with write keys of your own."""

    model_config = _config("RTAP_COLLECT_")

    host: str = LOOPBACK
    port: int = Field(default=8070, ge=0, le=65535)
    # JSON: {"<key>": {"site": "shop", "origins": ["https://shop.example"]}}; empty: the demo key only.
    write_keys: dict[str, SiteKey] = Field(default_factory=dict)
    # A request's body (after gzip: the inflated size too), and one event as written to Kafka.
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_event_bytes: int = Field(default=32_768, ge=256)
    max_batch_events: int = Field(default=500, ge=1)
    # Connections and requests served at once (each holds at most max_body_bytes); beyond it uvicorn answers 503.
    max_connections: int = Field(default=2048, ge=1)
    # A slow client holds a connection: its request line and headers must arrive within header_timeout_s (408),
    # its body within body_timeout_s (408, retried), and one client (an IPv6 /64) may hold at most
    # max_connections_per_client of max_connections (loopback and trusted proxies uncounted; rtap.runtime.http).
    header_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    body_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    max_connections_per_client: int = Field(default=256, ge=1)
    # Server processes on the one listening socket (rtap.collect.workers): one interpreter serves ~37,000 events/s
    # within 25 ms on this project's 2-core machine (bench/results/collect.md). Each has its own producer queue and
    # connection limit, and takes 1/workers of each key's rate and burst.
    workers: int = Field(default=1, ge=1, le=64)
    # Token buckets in events: per write key, and per client IP (at most limiter_entries IPs remembered).
    key_events_per_s: float = Field(default=20_000.0, gt=0)
    key_burst: int = Field(default=40_000, ge=1)
    ip_events_per_s: float = Field(default=200.0, gt=0)
    ip_burst: int = Field(default=1_000, ge=1)
    limiter_entries: int = Field(default=65_536, ge=1)
    # Addresses (or networks) of proxies whose X-Forwarded-For is believed; JSON list, e.g. ["10.0.0.0/8"].
    trusted_proxies: list[str] = Field(default_factory=list)
    # Zero the last octet of an IPv4 address and the last 80 bits of an IPv6 one before they reach Kafka.
    anonymize_ip: bool = True
    # The producer: a bounded queue (a full one is a 503, never a wait), a short linger, and how long a request
    # waits for Kafka's acknowledgement before it is a 503. The upper bounds are librdkafka's own ranges: beyond
    # them the producer, and so every collector process, would fail at its start.
    queue_max_messages: int = Field(default=100_000, ge=1, le=2_147_483_647)
    queue_max_kbytes: int = Field(default=65_536, ge=1, le=2_147_483_647)
    # 2 ms, not librdkafka's 5: a request waits for its records' linger before Kafka's ack, and a batch request
    # already brings its records together (bench/results/collect.md: B25's p99 at 32 connections).
    linger_ms: int = Field(default=2, ge=0, le=900_000)
    ack_timeout_s: float = Field(default=10.0, gt=0, le=2_147_483)
    # Retry-After (seconds) on a 503.
    retry_after_s: int = Field(default=5, ge=1)
    # POST /v1/noop/batch and /v1/noop/event: every step of /v1/batch and /v1/event but writing to Kafka; the
    # benchmark's measure of the server's own ceiling (bench/bench_collect.py). Off unless asked for.
    bench_noop: bool = False

    _networks = field_validator("trusted_proxies")(_ip_networks)

    @model_validator(mode="after")
    def _bursts_hold_a_batch(self) -> Self:
        for name, burst in (("key_burst", self.key_burst // self.workers), ("ip_burst", self.ip_burst)):
            if burst < self.max_batch_events:
                share = f" / workers={self.workers}" if name == "key_burst" and self.workers > 1 else ""
                raise ValueError(
                    f"{name}={getattr(self, name)}{share} is below max_batch_events={self.max_batch_events}: "
                    "a full batch could never pass the rate limit"
                )
        return self

    @property
    def demo_only(self) -> bool:
        """Whether the only key is the built-in demo key (refused beyond loopback: rtap.collect.server)."""
        return not self.write_keys


class MetabaseSettings(BaseSettings):
    """Metabase provisioning (``rtap metabase provision``)."""

    model_config = _config("RTAP_METABASE_")

    url: str = "http://127.0.0.1:3000"
    admin_email: str = "admin@rtap.local"
    admin_password: SecretStr = SecretStr("")
    site_name: str = "rtap"
    # How Metabase reaches ClickHouse (inside compose this is the service name, not loopback).
    clickhouse_host: str = "clickhouse"
    clickhouse_port: int = 8123


class DataPaths:
    """Layout of the rtap data directory: everything rtap writes lives below ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def kafka(self) -> Path:
        return self.root / "kafka"

    @property
    def chdb(self) -> Path:
        return self.root / "chdb"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def run(self) -> Path:
        """Pid files and local sockets of running rtap processes."""
        return self.root / "run"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def truth(self) -> Path:
        """Ground truth written by the generator for each produced run."""
        return self.root / "truth"


class Settings(BaseSettings):
    """Everything, grouped by component. ``Settings()`` reads the environment once."""

    model_config = _config("RTAP_")

    data_dir: Path = Path(".rtap")
    # Where `rtap` finds the Maven-resolved jars (jars/pom.xml -> `make jars`).
    jars_dir: Path = Path("jars/lib")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Class-data sharing archives for the broker's and Spark's JVMs (rtap.runtime.jvm): "on" maps them when they
    # exist (`make install` writes them), "off" ignores them, "dump" writes new ones at JVM exit.
    jvm_class_sharing: Literal["on", "off", "dump"] = "on"

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    producer: ProducerSettings = Field(default_factory=ProducerSettings)
    generator: GeneratorSettings = Field(default_factory=GeneratorSettings)
    warehouse: WarehouseSettings = Field(default_factory=WarehouseSettings)
    stream: StreamSettings = Field(default_factory=StreamSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    collect: CollectorSettings = Field(default_factory=CollectorSettings)
    metabase: MetabaseSettings = Field(default_factory=MetabaseSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)

    @field_validator("data_dir", "jars_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def paths(self) -> DataPaths:
        # A plain property: a cached one would survive model_copy(update={"data_dir": ...}) and point
        # the copy's files at the original's directory.
        return DataPaths(self.data_dir)


def describe_invalid(error: ValidationError) -> str:
    """A settings error in one line, naming the environment variables (never their values: some are secrets)."""
    prefixes = {
        cls.__name__: cls.model_config.get("env_prefix", "")
        for cls in (Settings, *(info.annotation for info in Settings.model_fields.values()))
        if isinstance(cls, type) and issubclass(cls, BaseSettings)
    }
    prefix = prefixes.get(error.title, "RTAP_")
    problems = []
    for detail in error.errors(include_url=False, include_input=False):
        message = detail["msg"].removeprefix("Value error, ")
        names = [str(part) for part in detail["loc"] if isinstance(part, str)]
        problems.append(f"{prefix}{names[0].upper()}: {message}" if names else message)
    return "; ".join(problems)


def _kafka_security_environment(kafka: KafkaSettings) -> dict[str, str]:
    """The RTAP_KAFKA_* variables of the Kafka clients' security: a child connects as its parent does."""

    def secret(value: SecretStr | None) -> str | None:
        return None if value is None else value.get_secret_value()

    values: dict[str, object] = {
        "SECURITY_PROTOCOL": kafka.security_protocol,
        "SSL_CA_FILE": kafka.ssl_ca_file,
        "SSL_CERTIFICATE_FILE": kafka.ssl_certificate_file,
        "SSL_KEY_FILE": kafka.ssl_key_file,
        "SSL_KEY_PASSWORD": secret(kafka.ssl_key_password),
        "SSL_ENDPOINT_IDENTIFICATION": str(kafka.ssl_endpoint_identification).lower(),
        "SASL_MECHANISM": kafka.sasl_mechanism,
        "SASL_USERNAME": kafka.sasl_username,
        "SASL_PASSWORD": secret(kafka.sasl_password),
        "AWS_REGION": kafka.aws_region,
        "AWS_PROFILE": kafka.aws_profile,
    }
    # Empty means "default" (env_ignore_empty): an unset value in the parent clears one the environment had.
    return {f"RTAP_KAFKA_{name}": "" if value is None else str(value) for name, value in values.items()}


def child_environment(settings: Settings) -> dict[str, str]:
    """The environment for an rtap child process (``rtap stream``, ``rtap reconcile``) with these settings:
    the parent's environment plus the RTAP_* variables that locate its data, jars, topics and Spark master, and
    say how its Kafka clients connect."""
    stream = settings.stream
    return {
        **os.environ,
        **_kafka_security_environment(settings.kafka),
        "RTAP_DATA_DIR": str(settings.data_dir),
        "RTAP_JARS_DIR": str(settings.jars_dir),
        "RTAP_KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "RTAP_KAFKA_TOPIC": settings.kafka.topic,
        "RTAP_KAFKA_SOURCE_TOPICS": json.dumps(settings.kafka.source_topics),
        "RTAP_KAFKA_BROWSER_TOPIC": settings.kafka.browser_topic,
        "RTAP_KAFKA_DLQ_TOPIC": settings.kafka.dlq_topic,
        "RTAP_KAFKA_PARTITIONS": str(settings.kafka.partitions),
        "RTAP_STREAM_MASTER": stream.master,
        "RTAP_STREAM_TRIGGER_INTERVAL_S": str(stream.trigger_interval_s),
        "RTAP_STREAM_MAX_BATCH_RECORDS": str(stream.max_batch_records),
        "RTAP_STREAM_MAX_BATCH_BYTES": str(stream.max_batch_bytes),
        "RTAP_STREAM_ACCEPT_DATA_LOSS": str(stream.accept_data_loss).lower(),
        "RTAP_METRICS_ENABLED": str(settings.metrics.enabled).lower(),
        "RTAP_METRICS_HOST": settings.metrics.host,
        "RTAP_METRICS_PORT": str(settings.metrics.port),
        "RTAP_METRICS_PRODUCER_PORT": str(settings.metrics.producer_port),
    }
