"""``rtap preflight`` against services it did not start: a real KRaft broker set up as a team's cluster would be
(tests/support/acl_kafka.py: a SASL_SSL listener, SCRAM logins, Kafka's StandardAuthorizer with ACLs per login),
embedded chDB, and addresses where nothing listens. Every problem is one line naming what is wrong.

The module creates topics and ACLs as the cluster's administrator. The login ``rtap-ok`` may READ, WRITE, CREATE
and DESCRIBE_CONFIGS the topics under ``pf-``, READ and WRITE those under ``nc-``, only READ those under ``ro-``,
and nothing else.
"""

from __future__ import annotations

import functools
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AclOperation  # type: ignore[attr-defined]  # not in the stubs
from confluent_kafka.cimpl import NewTopic

from rtap.ingest.topics import ensure_topics
from rtap.kafka_admin import admin_client
from rtap.runtime.stack.checks import Check
from rtap.runtime.stack.preflight import check_services, require_services, writer_grants
from rtap.runtime.stack.profiles import brokers_check
from rtap.settings import KafkaSettings, Settings, StreamSettings, WarehouseSettings, child_environment
from rtap.warehouse import create_client
from tests.support.acl_kafka import AclKafka, acl_kafka
from tests.support.paths import free_port, taken_port

pytestmark = pytest.mark.timeout(600)

USER, PASSWORD = "rtap-ok", secrets.token_hex(12)
PARTITIONS = 3
# A refused login or certificate ends the check at once; an address where nothing listens after the time-out.
TIMEOUT_S = 4.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclKafka]:
    with acl_kafka(tmp_path_factory.mktemp("preflight"), {USER: PASSWORD}) as kafka:
        kafka.allow(
            USER, "pf-", AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE, AclOperation.DESCRIBE_CONFIGS
        )
        kafka.allow(USER, "nc-", AclOperation.READ, AclOperation.WRITE)
        kafka.allow(USER, "ro-", AclOperation.READ)
        yield kafka


def topics(prefix: str) -> dict[str, str]:
    run = uuid.uuid4().hex[:8]
    return {
        "topic": f"{prefix}{run}.events",
        "browser_topic": f"{prefix}{run}.browser",
        "dlq_topic": f"{prefix}{run}.dlq",
    }


def login(cluster: AclKafka, names: dict[str, str], **values: Any) -> KafkaSettings:
    return cluster.login(USER, PASSWORD, **{"partitions": PARTITIONS, **names, **values})


def settings(tmp_path: Path, kafka: KafkaSettings, master: str = "local[*]", **warehouse: Any) -> Settings:
    return Settings(
        data_dir=tmp_path,
        kafka=kafka,
        stream=StreamSettings(master=master),
        warehouse=WarehouseSettings(_env_file=None, **warehouse),  # type: ignore[call-arg]
    )


def created(cluster: AclKafka, names: dict[str, str]) -> dict[str, str]:
    """``names``, created by the administrator."""
    ensure_topics(cluster.admin.model_copy(update={"partitions": PARTITIONS, **names}))
    return names


def failures(checks: list[Check]) -> dict[str, str]:
    for check in checks:
        assert "\n" not in check.detail, check
    return {check.name: check.detail for check in checks if not check.ok}


def waited(check: Callable[[], list[Check]], expected: dict[str, str] | None = None) -> list[Check]:
    """The checks once the broker's ACL cache has the fixture's ACLs and its metadata the topics just created (KRaft
    applies both asynchronously): once their failures are ``expected`` (none by default), or the last after 30 s."""
    deadline = time.monotonic() + 30
    while True:
        checks = check()
        if failures(checks) == (expected or {}) or time.monotonic() > deadline:
            return checks
        time.sleep(0.5)


def test_everything_ready_passes_every_check(cluster: AclKafka, tmp_path: Path) -> None:
    names = created(cluster, topics("pf-"))
    with taken_port() as master_port:
        ready = settings(tmp_path, login(cluster, names), master=f"spark://127.0.0.1:{master_port}")
        checks = waited(lambda: check_services(ready, TIMEOUT_S))
        assert failures(checks) == {}
        again = require_services(ready, TIMEOUT_S)  # chDB closed and opened again in one process
    details = {check.name: check.detail for check in checks}
    assert [check.name for check in again] == list(details)
    assert details["kafka"] == f"1 broker at {cluster.sasl_ssl} (SASL_SSL, as {USER})"
    assert (
        details[f"topic {names['topic']}"]
        == f"{PARTITIONS} partitions, READ and WRITE allowed, LogAppendTime timestamps"
    )
    assert details[f"topic {names['browser_topic']}"] == details[f"topic {names['topic']}"]
    assert details[f"topic {names['dlq_topic']}"] == f"{PARTITIONS} partitions, WRITE allowed"
    assert details["clickhouse"].startswith(f"embedded chDB in {tmp_path / 'chdb'}, ClickHouse ")
    assert details["spark"] == f"spark://127.0.0.1:{master_port}: 127.0.0.1:{master_port} accepts connections"


def test_status_names_the_external_cluster(cluster: AclKafka, tmp_path: Path) -> None:
    check = brokers_check(settings(tmp_path, login(cluster, topics("pf-"))))
    assert check == Check("kafka", True, f"1 of the cluster's brokers at {cluster.sasl_ssl}")
    wrong = brokers_check(settings(tmp_path, login(cluster, topics("pf-"), sasl_password="not-the-password")))
    assert not wrong.ok
    assert wrong.detail.startswith(f"Kafka at {cluster.sasl_ssl} refused the login of {USER} (")


def test_missing_topics_are_named_and_create_topics_creates_them(cluster: AclKafka, tmp_path: Path) -> None:
    names = topics("pf-")
    kafka = login(cluster, names)
    problems = failures(check_services(settings(tmp_path, kafka), TIMEOUT_S))
    assert set(problems) == {f"topic {name}" for name in names.values()}
    for name in names.values():
        assert problems[f"topic {name}"] == (
            f"topic {name} does not exist on {cluster.sasl_ssl}: create it with {PARTITIONS} partitions "
            "(docs/external.md), or let rtap create it: `rtap preflight --create-topics`"
        )
    assert sorted(ensure_topics(kafka)) == sorted(names.values())  # what --create-topics runs, as the login
    assert failures(waited(lambda: check_services(settings(tmp_path, kafka), TIMEOUT_S))) == {}


def test_a_missing_acl_names_the_login_the_operation_and_the_topic(cluster: AclKafka, tmp_path: Path) -> None:
    names = created(cluster, topics("pf-"))
    read_only = created(cluster, {"dlq_topic": f"ro-{uuid.uuid4().hex[:8]}.dlq"})["dlq_topic"]
    unlisted = created(cluster, {"browser_topic": f"na-{uuid.uuid4().hex[:8]}.browser"})["browser_topic"]
    kafka = login(cluster, {**names, "dlq_topic": read_only, "browser_topic": unlisted})

    expected = {
        f"topic {read_only}": f"the Kafka login {USER} may not WRITE topic {read_only}: missing ACL (docs/external.md)",
        f"topic {unlisted}": (
            f"the Kafka login {USER} may not DESCRIBE topic {unlisted} (so Kafka does not say whether it exists): "
            "missing ACL (docs/external.md lists the ACLs)"
        ),
    }
    problems = failures(waited(lambda: check_services(settings(tmp_path, kafka), TIMEOUT_S), expected))

    assert problems == expected


def test_producer_timestamps_on_an_input_topic_are_named(cluster: AclKafka, tmp_path: Path) -> None:
    names = topics("pf-")
    admin = admin_client(cluster.admin)
    created_by_hand = NewTopic(names["topic"], PARTITIONS, 1, config={"message.timestamp.type": "CreateTime"})
    for future in admin.create_topics([created_by_hand], request_timeout=30).values():
        future.result(timeout=30)
    created(cluster, names)  # the others, as rtap creates them
    expected = {
        f"topic {names['topic']}": (
            f"topic {names['topic']} stamps records with CreateTime, the producers' clocks, which would then bound how "
            "far an event's time may run ahead: set message.timestamp.type=LogAppendTime on it (kafka-configs --alter "
            f"--entity-type topics --entity-name {names['topic']} --add-config message.timestamp.type=LogAppendTime)"
        )
    }
    problems = failures(waited(lambda: check_services(settings(tmp_path, login(cluster, names)), TIMEOUT_S), expected))
    assert problems == expected


def test_timestamps_go_unchecked_where_the_login_may_not_read_the_configuration(
    cluster: AclKafka, tmp_path: Path
) -> None:
    names = created(cluster, topics("nc-"))
    checks = waited(lambda: check_services(settings(tmp_path, login(cluster, names)), TIMEOUT_S))
    details = {check.name: check.detail for check in checks if check.ok}
    assert details[f"topic {names['topic']}"] == (
        f"{PARTITIONS} partitions, READ and WRITE allowed; timestamps not checked (the login may not DESCRIBE_CONFIGS)"
    )


def test_topics_pass_with_the_partitions_they_have(cluster: AclKafka, tmp_path: Path) -> None:
    """A team's topics sized before rtap, whatever RTAP_KAFKA_PARTITIONS says: each reported with its count."""
    names = created(cluster, topics("pf-"))
    for partitions in (1, PARTITIONS + 1):
        sized = settings(tmp_path, login(cluster, names, partitions=partitions))
        checks = waited(functools.partial(check_services, sized, TIMEOUT_S))
        details = {check.name: check.detail for check in checks}
        assert failures(checks) == {}
        assert details[f"topic {names['dlq_topic']}"] == f"{PARTITIONS} partitions, WRITE allowed"


def test_a_wrong_password_is_one_line_at_once(cluster: AclKafka, tmp_path: Path) -> None:
    kafka = login(cluster, topics("pf-"), sasl_password="not-the-password")
    started = time.monotonic()
    problems = failures(check_services(settings(tmp_path, kafka), timeout_s=30))
    assert time.monotonic() - started < 20  # the refusal, not the time-out
    assert set(problems) == {"kafka"}  # no topic is asked about without a login
    assert problems["kafka"].startswith(f"Kafka at {cluster.sasl_ssl} refused the login of {USER} (")
    assert problems["kafka"].endswith(
        "check RTAP_KAFKA_SASL_MECHANISM, RTAP_KAFKA_SASL_USERNAME and RTAP_KAFKA_SASL_PASSWORD"
    )


def test_an_untrusted_certificate_is_one_line_at_once(cluster: AclKafka, tmp_path: Path) -> None:
    kafka = login(cluster, topics("pf-"), ssl_ca_file=cluster.certificates.other_ca)
    started = time.monotonic()
    problems = failures(check_services(settings(tmp_path, kafka), timeout_s=30))
    assert time.monotonic() - started < 20
    assert set(problems) == {"kafka"}
    assert problems["kafka"].startswith(f"the TLS handshake with Kafka at {cluster.sasl_ssl} failed (")
    assert "RTAP_KAFKA_SSL_CA_FILE must be the CA that signed the brokers' certificates" in problems["kafka"]


def test_unreachable_services_are_each_one_line(tmp_path: Path) -> None:
    kafka_port, clickhouse_port, master_port = free_port(), free_port(), free_port()
    kafka = KafkaSettings(_env_file=None, bootstrap_servers=f"127.0.0.1:{kafka_port},127.0.0.2:{kafka_port}")  # type: ignore[call-arg]
    nowhere = settings(
        tmp_path, kafka, master=f"spark://127.0.0.1:{master_port}", backend="server", port=clickhouse_port
    )

    problems = failures(check_services(nowhere, TIMEOUT_S))

    assert set(problems) == {"kafka", "clickhouse", "spark"}
    assert problems["kafka"].startswith(
        f"Kafka at 127.0.0.1:{kafka_port},127.0.0.2:{kafka_port} did not answer within {TIMEOUT_S:.0f}s ("
    )
    assert problems["kafka"].endswith("is it running, and reachable from this machine?")
    assert problems["clickhouse"].startswith(f"ClickHouse server 127.0.0.1:{clickhouse_port}: connection failed: ")
    assert problems["spark"].startswith(f"Spark master spark://127.0.0.1:{master_port} is unreachable (")


def test_chdb_answers_check_grant_for_the_writer(tmp_path: Path) -> None:
    with create_client(Settings(data_dir=tmp_path)) as client:
        version = str(client.query_rows("SELECT version()")[0][0])
        check = writer_grants(client, "default", version)
        old = writer_grants(client, "default", "24.8.4.13")
    assert check.ok, check.detail
    assert old == Check("grants", True, "not checked: ClickHouse 24.8.4.13 has no reliable CHECK GRANT (from 25.1)")
    assert check.detail == (
        "default may SELECT, INSERT, CREATE DATABASE, CREATE TABLE, CREATE VIEW, ALTER ADD COLUMN, ALTER ORDER BY, "
        "ALTER TTL, ALTER VIEW MODIFY QUERY on rtap.*"
    )


def test_the_command_prints_a_table_when_ready_and_the_lines_when_not(cluster: AclKafka, tmp_path: Path) -> None:
    ready = settings(tmp_path / "ready", login(cluster, created(cluster, topics("pf-"))))
    waited(lambda: check_services(ready, TIMEOUT_S))
    command = [sys.executable, "-m", "rtap", "preflight", "--timeout-s", str(TIMEOUT_S)]
    passed = subprocess.run(command, env=child_environment(ready), capture_output=True, text=True, timeout=120)
    assert passed.returncode == 0, passed.stderr
    assert "rtap preflight: ready" in passed.stdout
    assert f"1 broker at {cluster.sasl_ssl} (SASL_SSL, as {USER})" in passed.stdout

    wrong = settings(tmp_path / "wrong", login(cluster, topics("pf-"), sasl_password="not-the-password"))
    failed = subprocess.run(command, env=child_environment(wrong), capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1
    lines = failed.stderr.splitlines()
    assert lines[0] == "error: preflight found a problem, nothing was started:"
    assert lines[1].startswith(f"  kafka: Kafka at {cluster.sasl_ssl} refused the login of {USER} (")
    assert len(lines) == 2
    assert "not-the-password" not in failed.stderr + failed.stdout


def test_an_unreachable_clickhouse_server_is_its_line_alone_on_stderr(cluster: AclKafka, tmp_path: Path) -> None:
    ready = settings(tmp_path, login(cluster, created(cluster, topics("pf-"))))
    waited(lambda: check_services(ready, TIMEOUT_S))
    port = free_port()
    env = {**child_environment(ready), "RTAP_CLICKHOUSE_BACKEND": "server", "RTAP_CLICKHOUSE_PORT": str(port)}
    command = [sys.executable, "-m", "rtap", "preflight", "--timeout-s", str(TIMEOUT_S)]
    failed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1
    lines = failed.stderr.splitlines()
    assert lines[0] == "error: preflight found a problem, nothing was started:"
    assert lines[1].startswith(f"  clickhouse: ClickHouse server 127.0.0.1:{port}: connection failed: ")
    assert len(lines) == 2, failed.stderr  # the driver's own log of the failure is not printed


def test_up_with_the_external_profile_starts_nothing_when_preflight_fails(tmp_path: Path) -> None:
    kafka_port = free_port()
    nowhere = settings(tmp_path, KafkaSettings(_env_file=None, bootstrap_servers=f"127.0.0.1:{kafka_port}"))  # type: ignore[call-arg]
    env = {
        **child_environment(nowhere),
        "RTAP_DASHBOARD_PORT": str(free_port()),
        "RTAP_COLLECT_PORT": str(free_port()),
        "RTAP_METRICS_PORT": str(free_port()),
    }
    command = [sys.executable, "-m", "rtap", "up", "--profile", "external"]
    up = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert up.returncode == 1, up.stdout + up.stderr
    assert "error: preflight found a problem, nothing was started:" in up.stderr
    assert f"  kafka: Kafka at 127.0.0.1:{kafka_port} did not answer within 10s (" in up.stderr
    assert "Traceback" not in up.stderr
    assert "✓" not in up.stdout  # no step of the start-up was done
