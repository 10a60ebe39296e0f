"""All of rtap's configuration, typed, in one module.

Each component has its own settings class and its own environment prefix; this module is the only
place that knows environment variable names (deep code receives a settings object, never reads
``os.environ``). Values come from, in order: explicit arguments, ``RTAP_*`` environment variables,
a ``.env`` file in the working directory, then the defaults below. ``.env.example`` lists them all.
Secrets are ``SecretStr`` so they never appear in logs or reprs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal, Self

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LOOPBACK = "127.0.0.1"


def _config(prefix: str) -> SettingsConfigDict:
    # env_ignore_empty: a copied .env.example with blank values means "default", not "empty string".
    return SettingsConfigDict(
        env_prefix=prefix, env_file=".env", extra="ignore", validate_default=True, env_ignore_empty=True
    )


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
    # For managed clusters (MSK, Confluent Cloud): SASL over TLS. Empty means PLAINTEXT.
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None

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

        for name, source_format in self.source_topics.items():
            if name in (self.topic, self.dlq_topic):
                raise ValueError(f"source topic {name} is already the input or the dead-letter topic")
            for other in (self.topic, self.dlq_topic):
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

    @property
    def input_topics(self) -> dict[str, str]:
        """Every topic the stream job reads, with the source format it carries: the contract-v1 topic first."""
        from rtap.contract.model import NATIVE_FORMAT

        return {self.topic: NATIVE_FORMAT, **self.source_topics}

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

    def client_config(self) -> dict[str, str]:
        """librdkafka / Java client properties shared by every Kafka client rtap makes."""
        config = {"bootstrap.servers": self.bootstrap_servers, "security.protocol": self.security_protocol}
        if self.sasl_mechanism:
            config["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            config["sasl.username"] = self.sasl_username
        if self.sasl_password:
            config["sasl.password"] = self.sasl_password.get_secret_value()
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
    # this time and memory (and a result of this size). chDB: its read-only connection; a server: the reader's
    # profile, which deploy/compose/clickhouse/users.d/rtap-users.xml sets to these defaults (a test checks).
    # A query may tighten them, never lift them.
    read_max_execution_time_s: float = Field(default=30.0, gt=0)
    read_max_memory_bytes: int = Field(default=256 * 1024 * 1024, ge=16 * 1024 * 1024)


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
    # max_batch_bytes of payload: what one batch brings into the driver (rtap.stream.job.batch_cap).
    max_batch_records: int = Field(default=200_000, ge=1)
    max_batch_bytes: int = Field(default=128 * 1024 * 1024, ge=1024 * 1024)
    starting_offsets: Literal["earliest", "latest"] = "earliest"
    # Records Kafka deleted (retention) before the job read them stop the job; true skips them, recorded
    # in the warehouse's data_gaps table and reported by `rtap reconcile` (docs/operations.md).
    accept_data_loss: bool = False
    bot_clicks_per_minute: int = Field(default=60, ge=1)
    # Records larger than this go to the dead letters instead of being parsed.
    max_record_bytes: int = Field(default=65_536, ge=256)
    # event_time later than the Kafka record timestamp by more than this is rejected as implausible.
    max_future_skew_s: float = Field(default=3600.0, ge=0)
    shuffle_partitions: int = Field(default=2, ge=1)
    driver_memory: str = "1g"
    # Failures in a row (a failed batch, Spark's JVM dying) before the job gives up; a committed batch resets it.
    max_consecutive_failures: int = Field(default=5, ge=1)
    # The Python the executors run the parse stage with (rtap and its packages installed); empty: this one.
    python: str | None = None
    # Address the Spark UI (and, in local mode, the driver) listens on. Inside a container: 0.0.0.0.
    ui_host: str = LOOPBACK


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
    # One result per panel and range serves every viewer for this long; a range ending now is aligned to it,
    # so viewers whose clocks differ by less share it (0: no sharing).
    cache_ttl_s: float = Field(default=2.0, ge=0)
    # The login beyond loopback (rtap.dashboard.auth): without one of these the dashboard refuses any other
    # address. The password (also what `rtap validate` logs in with), or its hash from
    # `rtap dashboard --hash-password` so the server's environment holds no password.
    password: SecretStr | None = None
    password_hash: SecretStr | None = None
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)


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
    # The rate window of the freshness and dead-letter rules, and how long they must hold.
    window_s: float = Field(default=300.0, gt=0)


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


def child_environment(settings: Settings) -> dict[str, str]:
    """The environment for an rtap child process (``rtap stream``, ``rtap reconcile``) with these settings:
    the parent's environment plus the RTAP_* variables that locate its data, jars, topics and Spark master."""
    stream = settings.stream
    return {
        **os.environ,
        "RTAP_DATA_DIR": str(settings.data_dir),
        "RTAP_JARS_DIR": str(settings.jars_dir),
        "RTAP_KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "RTAP_KAFKA_TOPIC": settings.kafka.topic,
        "RTAP_KAFKA_SOURCE_TOPICS": json.dumps(settings.kafka.source_topics),
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
