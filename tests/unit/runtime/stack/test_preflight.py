"""``rtap preflight``'s parts that need no service: Spark master URLs, ClickHouse versions, what each topic needs,
and the one-line-per-problem error. The checks against a real broker and chDB: tests/integration/runtime/stack."""

from __future__ import annotations

import inspect

import pytest
from confluent_kafka.admin import AclOperation  # type: ignore[attr-defined]  # not in the stubs

from rtap.errors import PreflightError
from rtap.runtime.stack import cli
from rtap.runtime.stack.preflight import (
    PREFLIGHT_TIMEOUT_S,
    master_addresses,
    spark_check,
    topic_needs,
    version_problem,
)
from rtap.settings import KafkaSettings
from rtap.warehouse.version import MIN_SERVER_VERSION, parse_version
from tests.support.paths import free_port, taken_port


@pytest.mark.parametrize(
    ("master", "addresses"),
    [
        ("local", []),
        ("local[*]", []),
        ("local[4]", []),
        ("local[2, 3]", []),
        ("yarn", []),
        ("spark://spark-master:7077", [("spark-master", 7077)]),
        ("spark://spark-master", [("spark-master", 7077)]),
        ("spark://m1:7077,m2:7078", [("m1", 7077), ("m2", 7078)]),
        ("spark://[::1]:7077", [("::1", 7077)]),
        ("k8s://https://api.example:6443", [("api.example", 6443)]),
        ("k8s://https://api.example", [("api.example", 443)]),
        ("mesos://host:5050", None),
        ("spark://", None),
        ("k8s://", None),
        ("local[x]", None),
    ],
)
def test_master_urls_name_the_addresses_spark_connects_to(master: str, addresses: list[tuple[str, int]] | None) -> None:
    assert master_addresses(master) == addresses


def test_a_master_that_answers_passes_and_one_that_does_not_is_one_line() -> None:
    with taken_port() as port:
        assert spark_check(f"spark://127.0.0.1:{port}", timeout_s=2).ok

    closed = free_port()
    check = spark_check(f"spark://127.0.0.1:{closed}", timeout_s=2)
    assert not check.ok
    assert check.detail.startswith(f"Spark master spark://127.0.0.1:{closed} is unreachable (127.0.0.1:{closed}: ")
    assert "\n" not in check.detail


def test_a_standby_master_that_answers_is_enough() -> None:
    with taken_port() as port:
        check = spark_check(f"spark://127.0.0.1:{free_port()},127.0.0.1:{port}", timeout_s=2)
    assert check.ok, check.detail
    assert check.detail.endswith(f"127.0.0.1:{port} accepts connections")


def test_a_local_master_needs_nothing_and_a_wrong_url_names_the_setting() -> None:
    assert spark_check("local[*]", timeout_s=1).ok
    check = spark_check("mesos://host:5050", timeout_s=1)
    assert not check.ok
    assert check.detail.startswith("RTAP_STREAM_MASTER=mesos://host:5050 is not a Spark master URL")


def test_versions_below_the_floor_are_named_with_the_floor() -> None:
    assert parse_version("24.8.4.13") == (24, 8)
    assert version_problem("25.8.1.1") is None
    assert version_problem(".".join(map(str, MIN_SERVER_VERSION))) is None
    problem = version_problem("24.3.5.47")
    floor = ".".join(map(str, MIN_SERVER_VERSION))
    assert problem == f"ClickHouse 24.3.5.47 is older than {floor}, the oldest release rtap runs on: upgrade the server"


def test_each_topic_needs_what_the_pipeline_does_there() -> None:
    kafka = KafkaSettings(_env_file=None, source_topics={"legacy-click.v1": "legacy-click.v1"})  # type: ignore[call-arg]
    read, write = AclOperation.READ, AclOperation.WRITE
    assert topic_needs(kafka) == {
        "legacy-click.v1": (read,),  # a team's own topic: the job only reads it
        kafka.topic: (read, write),  # the generator and `rtap dlq replay` write it
        kafka.browser_topic: (read, write),  # the collector writes it
        kafka.dlq_topic: (write,),
    }


def test_the_command_waits_as_long_as_rtap_up_does() -> None:
    assert inspect.signature(cli.preflight).parameters["timeout_s"].default == PREFLIGHT_TIMEOUT_S


def test_a_preflight_error_is_one_line_per_problem() -> None:
    error = PreflightError(["kafka: Kafka at x:9092 did not answer", "spark: Spark master spark://m is unreachable"])
    assert str(error).splitlines() == [
        "preflight found 2 problems, nothing was started:",
        "  kafka: Kafka at x:9092 did not answer",
        "  spark: Spark master spark://m is unreachable",
    ]
    assert str(PreflightError(["spark: down"])).startswith("preflight found a problem,")
    assert error.exit_code == 1
