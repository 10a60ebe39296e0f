"""``rtap preflight``: is every service rtap would use, and starts none of, ready for it? One line per problem.

External mode (``rtap up --profile external``, docs/external.md) runs rtap's own processes against a Kafka
cluster, a ClickHouse server and a Spark master that a team already runs. Before anything starts, each of
them is asked what the pipeline will need from it, as the pipeline's own clients (the same settings, the same
logins), so that a wrong password, a certificate the client does not trust, a topic or an ACL that is missing,
a server too old or a master that does not answer is named in one line, instead of a time-out later:

- Kafka: the first contact (:func:`rtap.kafka_admin.connect`: unreachable, or the login or a certificate
  refused), then every input topic and the dead-letter topic: it exists (with any number of partitions:
  rtap.ingest.topics), and the login may do on it what the pipeline does (the broker's own
  answer: ``authorized_operations``, which a cluster without an authorizer reports as everything); rtap's own
  input topics stamp records with the broker's clock (``LogAppendTime``, as rtap.ingest.topics creates them);
- ClickHouse: the writer's login (migrations and the job) and, on a server, the reader's (dashboards,
  ``rtap sql``); the engine's version against :data:`MIN_SERVER_VERSION`; the writer's grants (``CHECK GRANT``,
  from ClickHouse 25.1);
- Spark: the master's address answers a TCP connection (``spark://``, ``k8s://``); ``local[...]`` runs in the
  driver's process and needs nothing.

External mode never creates topics on a team's cluster by itself; ``rtap preflight --create-topics`` does,
on request, with the ``RTAP_KAFKA_*`` partitions, replication and retention.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # not in the stubs
    AclOperation,
    AdminClient,
    ConfigResource,
    ResourceType,
)

from rtap.errors import BrokerError, PreflightError, WarehouseError
from rtap.ingest.topics import INPUT_TOPIC_CONFIG
from rtap.kafka_admin import connect, describe_error
from rtap.runtime.stack.checks import Check
from rtap.settings import KafkaSettings, Settings
from rtap.warehouse import WarehouseClient, create_client
from rtap.warehouse.grants import WRITER
from rtap.warehouse.version import MIN_SERVER_VERSION, parse_version

#: How long Kafka and the Spark master get to answer (ClickHouse's client has RTAP_CLICKHOUSE_CONNECT_TIMEOUT_S).
PREFLIGHT_TIMEOUT_S = 10.0
#: What the writer account does on the rtap database (rtap.warehouse.grants lists all of both accounts' grants),
#: asked with CHECK GRANT, which needs no grant of its own.
WRITER_GRANTS = next(grant.privileges for grant in WRITER if grant.target == "{db}.*")
#: The reader's SELECT, on a table every rtap database has once migrated.
READER_PROBE = "SELECT count() FROM {db}.pipeline_batches WHERE 0"
# CHECK GRANT as first released answered 0 for ``db.*`` whatever the grants (it looked for a table named ''); the
# rewrite of November 2024 asks the access rights alone. Older servers' grants are not checked.
_CHECK_GRANT_SINCE = (25, 1)
# ClickHouse's codes: a login refused, an account without a grant, a table or database that does not exist yet.
_AUTHENTICATION_FAILED, _ACCESS_DENIED, _UNKNOWN_TABLE, _UNKNOWN_DATABASE = 516, 497, 60, 81
_LOCAL_MASTER = re.compile(r"^local(\[(\*|\d+)(,\s*\d+)?\])?$")
# What rtap's own input topics must stamp their records with (rtap.ingest.topics creates them so).
((_TIMESTAMP_CONFIG, _TIMESTAMP_TYPE),) = INPUT_TOPIC_CONFIG.items()
# The Spark master's default ports by scheme, when its URL names none.
_DEFAULT_PORTS = {"spark": 7077, "https": 443, "http": 80}


def check_services(settings: Settings, timeout_s: float = PREFLIGHT_TIMEOUT_S) -> list[Check]:
    """Every check, passed or failed, in the order a reader fixes them: Kafka, ClickHouse, Spark."""
    return [
        *kafka_checks(settings.kafka, timeout_s),
        *warehouse_checks(settings),
        spark_check(settings.stream.master, timeout_s),
    ]


def require_services(settings: Settings, timeout_s: float = PREFLIGHT_TIMEOUT_S) -> list[Check]:
    """The checks, all passed; else :class:`PreflightError` naming each failure."""
    checks = check_services(settings, timeout_s)
    failures = [f"{check.name}: {check.detail}" for check in checks if not check.ok]
    if failures:
        raise PreflightError(failures)
    return checks


# -- Kafka ------------------------------------------------------------------------------------------------------


def topic_needs(kafka: KafkaSettings) -> dict[str, tuple[AclOperation, ...]]:
    """Each topic the pipeline uses and what its login does there: the stream job READs every input topic and
    WRITEs dead letters; rtap's producers WRITE the contract-v1 topic (generator, ``rtap dlq replay``) and the
    browser topic (``rtap collect``). A team's own source topics are only read."""
    read, both = (AclOperation.READ,), (AclOperation.READ, AclOperation.WRITE)
    needs: dict[str, tuple[AclOperation, ...]] = dict.fromkeys(kafka.source_topics, read)
    needs |= {kafka.topic: both, kafka.browser_topic: both}
    needs[kafka.dlq_topic] = (AclOperation.WRITE,)
    return needs


def kafka_checks(kafka: KafkaSettings, timeout_s: float) -> list[Check]:
    """The first contact, then one check per topic (none if the cluster cannot be reached)."""
    try:
        admin, metadata = connect(kafka, timeout_s)
    except BrokerError as error:
        return [Check("kafka", False, str(error))]
    login = f", as {kafka.sasl_username}" if kafka.sasl_username else ""
    brokers = f"{len(metadata.brokers)} broker{'s' if len(metadata.brokers) != 1 else ''}"
    checks = [Check("kafka", True, f"{brokers} at {kafka.bootstrap_servers} ({kafka.security_protocol}{login})")]
    return checks + list(_topic_checks(admin, kafka, timeout_s))


def _topic_checks(admin: AdminClient, kafka: KafkaSettings, timeout_s: float) -> Iterator[Check]:
    needs = topic_needs(kafka)
    futures = admin.describe_topics(
        TopicCollection(list(needs)), include_authorized_operations=True, request_timeout=timeout_s
    )
    for name, future in futures.items():
        label = f"topic {name}"
        try:
            description = future.result()
        except KafkaException as exc:
            yield Check(label, False, _topic_refusal(kafka, name, exc))
            continue
        allowed = set(description.authorized_operations or ())
        missing = [operation.name for operation in needs[name] if not allowed & {operation, AclOperation.ALL}]
        if missing:
            yield Check(label, False, _missing_acl(kafka, name, missing))
            continue
        operations = " and ".join(operation.name for operation in needs[name])
        detail = f"{len(description.partitions)} partitions, {operations} allowed"
        if name not in (kafka.topic, kafka.browser_topic):  # the DLQ's timestamps, a team's own topics: as they are
            yield Check(label, True, detail)
            continue
        try:
            timestamps = _timestamp_type(admin, name, timeout_s)
        except BrokerError as error:
            yield Check(label, False, str(error))
            continue
        if timestamps is None:
            yield Check(label, True, f"{detail}; timestamps not checked (the login may not DESCRIBE_CONFIGS)")
        elif timestamps != _TIMESTAMP_TYPE:
            yield Check(label, False, _producer_clock(name, timestamps))
        else:
            yield Check(label, True, f"{detail}, {_TIMESTAMP_TYPE} timestamps")


def _timestamp_type(admin: AdminClient, name: str, timeout_s: float) -> str | None:
    """The topic's ``message.timestamp.type``; None when the login may not read the topic's configuration."""
    (future,) = admin.describe_configs([ConfigResource(ResourceType.TOPIC, name)], request_timeout=timeout_s).values()
    try:
        entries = future.result()
    except KafkaException as exc:
        if _error_code(exc) == KafkaError.TOPIC_AUTHORIZATION_FAILED:
            return None
        raise BrokerError(f"cannot read the configuration of topic {name}: {describe_error(exc)}") from exc
    return str(entries[_TIMESTAMP_CONFIG].value)


def _producer_clock(name: str, timestamps: str) -> str:
    return (
        f"topic {name} stamps records with {timestamps}, the producers' clocks, which would then bound how far an "
        f"event's time may run ahead: set {_TIMESTAMP_CONFIG}={_TIMESTAMP_TYPE} on it (kafka-configs --alter "
        f"--entity-type topics --entity-name {name} --add-config {_TIMESTAMP_CONFIG}={_TIMESTAMP_TYPE})"
    )


def _principal(kafka: KafkaSettings) -> str:
    return f"the Kafka login {kafka.sasl_username}" if kafka.sasl_username else "rtap's Kafka login"


def _error_code(exc: KafkaException) -> int | None:
    error = exc.args[0] if exc.args else None
    return error.code() if isinstance(error, KafkaError) else None


def _topic_refusal(kafka: KafkaSettings, name: str, exc: KafkaException) -> str:
    code = _error_code(exc)
    if code == KafkaError.UNKNOWN_TOPIC_OR_PART:
        return (
            f"topic {name} does not exist on {kafka.bootstrap_servers}: create it with {kafka.partitions} partitions "
            "(docs/external.md), or let rtap create it: `rtap preflight --create-topics`"
        )
    if code == KafkaError.TOPIC_AUTHORIZATION_FAILED:
        return (
            f"{_principal(kafka)} may not DESCRIBE topic {name} (so Kafka does not say whether it exists): "
            "missing ACL (docs/external.md lists the ACLs)"
        )
    return f"cannot describe topic {name}: {describe_error(exc)}"


def _missing_acl(kafka: KafkaSettings, name: str, missing: list[str]) -> str:
    return f"{_principal(kafka)} may not {' or '.join(missing)} topic {name}: missing ACL (docs/external.md)"


# -- ClickHouse -------------------------------------------------------------------------------------------------


def version_problem(version: str, floor: tuple[int, int] = MIN_SERVER_VERSION) -> str | None:
    """Why ``version`` is too old for rtap, or None."""
    if parse_version(version) >= floor:
        return None
    wanted = ".".join(map(str, floor))
    return f"ClickHouse {version} is older than {wanted}, the oldest release rtap runs on: upgrade the server"


def warehouse_checks(settings: Settings) -> list[Check]:
    """The writer's login, version and grants; on a server, the reader's login too."""
    warehouse = settings.warehouse
    if warehouse.backend == "chdb":
        where, account = f"embedded chDB in {settings.paths.chdb}", ""
    else:
        where, account = f"ClickHouse server {warehouse.host}:{warehouse.port}", f" as {warehouse.user}"
    try:
        with create_client(settings) as client:
            version = str(client.query_rows("SELECT version()")[0][0])
            problem = version_problem(version)
            if problem is not None:
                return [Check("clickhouse", False, f"{where}: {problem}")]
            checks = [Check("clickhouse", True, f"{where}, ClickHouse {version}{account}")]
            if warehouse.backend == "server":
                checks.append(writer_grants(client, warehouse.user, version))
    except WarehouseError as error:
        return [Check("clickhouse", False, _login_problem(error, where, warehouse.user, "RTAP_CLICKHOUSE_"))]
    if warehouse.backend == "server":
        checks.append(_reader_check(settings, where))
    return checks


def _login_problem(error: WarehouseError, where: str, user: str, prefix: str) -> str:
    if error.code == _AUTHENTICATION_FAILED:
        return f"{where} refused the login of {user}: check {prefix}USER and {prefix}PASSWORD"
    return str(error) if str(error).startswith(where) else f"{where}: {error}"


def writer_grants(client: WarehouseClient, user: str, version: str) -> Check:
    """Whether ``user``, the account ``client`` logged in as, holds :data:`WRITER_GRANTS` on the database (asked
    with ``CHECK GRANT`` of ClickHouse ``version``, where it can answer)."""
    if parse_version(version) < _CHECK_GRANT_SINCE:
        since = ".".join(map(str, _CHECK_GRANT_SINCE))
        return Check("grants", True, f"not checked: ClickHouse {version} has no reliable CHECK GRANT (from {since})")
    missing = [grant for grant in WRITER_GRANTS if not client.query_rows(f"CHECK GRANT {grant} ON {{db}}.*")[0][0]]
    scope = f"{client.database}.*"
    if missing:
        grants = ", ".join(missing)
        return Check("grants", False, f"{user} lacks {grants} on {scope}: GRANT {grants} ON {scope} TO {user}")
    return Check("grants", True, f"{user} may {', '.join(WRITER_GRANTS)} on {scope}")


def _reader_check(settings: Settings, where: str) -> Check:
    """The reader's login and its SELECT on the tables (once ``rtap migrate`` has made them)."""
    user = settings.warehouse.readonly_user
    try:
        with create_client(settings, readonly=True) as reader:
            reader.query_rows(READER_PROBE)
    except WarehouseError as error:
        if error.code in (_UNKNOWN_TABLE, _UNKNOWN_DATABASE):
            return Check("reader", True, f"{user} logs in; its SELECT is checked once `rtap migrate` made the tables")
        if error.code == _ACCESS_DENIED:
            database = settings.warehouse.database
            grant = f"GRANT SELECT ON {database}.* TO {user}"
            return Check("reader", False, f"{user} may not SELECT on {database}: {grant}")
        return Check("reader", False, _login_problem(error, where, user, "RTAP_CLICKHOUSE_READONLY_"))
    return Check("reader", True, f"{user} may SELECT on {settings.warehouse.database}")


# -- Spark ------------------------------------------------------------------------------------------------------


def master_addresses(master: str) -> list[tuple[str, int]] | None:
    """The (host, port) a Spark master URL connects to; [] when it runs in this process (``local``) or its
    address comes from elsewhere (``yarn``: HADOOP_CONF_DIR); None when it is no master URL."""
    if _LOCAL_MASTER.match(master) or master == "yarn":
        return []
    if master.startswith("k8s://"):
        parts = urlsplit(master.removeprefix("k8s://"))
        if not parts.hostname:
            return None
        return [(parts.hostname, parts.port or _DEFAULT_PORTS.get(parts.scheme, 443))]
    if master.startswith("spark://"):
        addresses = []
        for entry in master.removeprefix("spark://").split(","):  # standalone masters with ZooKeeper failover
            parts = urlsplit(f"spark://{entry.strip()}")
            if not parts.hostname:
                return None
            addresses.append((parts.hostname, parts.port or _DEFAULT_PORTS["spark"]))
        return addresses
    return None


def spark_check(master: str, timeout_s: float) -> Check:
    """Whether a Spark master answers: one of a standalone master list is enough (the others are standbys)."""
    addresses = master_addresses(master)
    if addresses is None:
        return Check(
            "spark", False, f"RTAP_STREAM_MASTER={master} is not a Spark master URL (local[*], spark://HOST:PORT, "
            "k8s://https://HOST:PORT or yarn)"
        )  # fmt: skip
    if not addresses:
        where = "YARN, from HADOOP_CONF_DIR (not checked)" if master == "yarn" else "in the driver's process"
        return Check("spark", True, f"{master}: {where}")
    reasons = []
    for host, port in addresses:
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
        except OSError as exc:
            reasons.append(f"{host}:{port}: {exc.strerror or exc}")
        else:
            return Check("spark", True, f"{master}: {host}:{port} accepts connections")
    return Check("spark", False, f"Spark master {master} is unreachable ({'; '.join(reasons)})")
