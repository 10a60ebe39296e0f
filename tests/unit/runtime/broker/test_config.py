"""The broker's configuration and command lines, built from settings without starting a JVM."""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from rtap.errors import DependencyError
from rtap.runtime.broker.config import (
    BROKER_MAIN,
    STORAGE_TOOL_MAIN,
    BrokerFiles,
    BrokerSecurity,
    KraftNode,
    ScramCredential,
    SecureListener,
    broker_command,
    format_command,
    java_command,
    kafka_classpath,
    keystore_pem,
    random_cluster_id,
    server_properties,
)
from rtap.runtime.jvm import archive_path
from rtap.settings import KafkaSettings, Settings

VOTERS = "1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097"


def _settings(tmp_path: Path, home: Path | None = None, **kafka: Any) -> Settings:
    # `home` is read from RTAP_KAFKA_HOME or KAFKA_HOME (a validation alias), so it is set by update.
    kafka_settings = KafkaSettings(**kafka).model_copy(update={"home": home})
    return Settings(data_dir=tmp_path / "data", jars_dir=tmp_path / "jars", kafka=kafka_settings)


def _parse(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_server_properties_describe_one_combined_node_on_the_configured_ports(tmp_path: Path) -> None:
    settings = _settings(tmp_path, port=19092, controller_port=19093, partitions=3, retention_hours=5)
    files = BrokerFiles(settings.paths.kafka)

    props = _parse(server_properties(settings, files))

    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == f"{props['node.id']}@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["log.dirs"] == str(tmp_path / "data" / "kafka" / "data")
    assert props["num.partitions"] == "3"
    assert props["log.retention.hours"] == "5"
    assert props["auto.create.topics.enable"] == "false"
    assert props["offsets.topic.replication.factor"] == "1"


def test_broker_files_live_under_the_kafka_data_path(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    files = BrokerFiles(settings.paths.kafka)

    for path in (files.server_properties, files.log4j_config, files.log, files.pid, files.data):
        assert path.parent == settings.paths.kafka
    assert not files.formatted
    files.data.mkdir(parents=True)
    (files.data / "meta.properties").write_text("cluster.id=x\n")
    assert files.formatted


def test_cluster_id_is_16_random_bytes_in_url_safe_base64() -> None:
    ids = {random_cluster_id() for _ in range(200)}

    assert len(ids) == 200
    for cluster_id in ids:
        assert len(cluster_id) == 22
        assert not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_missing_jars_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DependencyError, match=r"run `make jars`"):
        kafka_classpath(_settings(tmp_path))


def test_kafka_home_libs_replace_the_maven_jars(tmp_path: Path) -> None:
    home = tmp_path / "kafka_2.13-4.1.1"
    (home / "libs").mkdir(parents=True)
    (home / "libs" / "kafka_2.13-4.1.1.jar").write_bytes(b"")

    assert kafka_classpath(_settings(tmp_path, home=home)) == f"{home / 'libs'}/*"


def test_kafka_home_that_is_not_a_distribution_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DependencyError, match="not an Apache Kafka distribution"):
        kafka_classpath(_settings(tmp_path, home=tmp_path))


def test_command_lines_carry_heap_logging_and_main_classes(tmp_path: Path) -> None:
    settings = _settings(tmp_path, heap="256m")
    files = BrokerFiles(settings.paths.kafka)

    base = java_command("/usr/bin/java", settings, files, "/jars/*")
    fmt = format_command(base, files, "abc")
    run = broker_command(base, files)

    assert base[0] == "/usr/bin/java"
    assert {"-Xms256m", "-Xmx256m", f"-Dlog4j2.configurationFile={files.log4j_config}"} <= set(base)
    assert base[base.index("-cp") + 1] == "/jars/*"
    assert fmt[len(base) :] == [
        STORAGE_TOOL_MAIN,
        "format",
        "--config",
        str(files.server_properties),
        "--cluster-id",
        "abc",
    ]
    assert run[len(base) :] == [BROKER_MAIN, str(files.server_properties)]


def test_the_broker_maps_its_class_data_archive_when_installed(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    files = BrokerFiles(settings.paths.kafka)
    assert not any("SharedArchiveFile" in arg for arg in java_command("java", settings, files, "/jars/*"))

    archive = archive_path(settings, "kafka")
    archive.parent.mkdir(parents=True)
    archive.touch()
    base = java_command("java", settings, files, "/jars/*")
    assert f"-XX:SharedArchiveFile={archive}" in base
    assert base.index(f"-XX:SharedArchiveFile={archive}") < base.index("-cp")  # a JVM option, not a program one


def test_a_quorum_member_lists_every_voter_and_replicates_internal_topics(tmp_path: Path) -> None:
    kafka = KafkaSettings(port=19094, controller_port=19095, replication_factor=3, min_insync_replicas=2)
    settings = Settings(data_dir=tmp_path, kafka=kafka)

    props = _parse(server_properties(settings, BrokerFiles(tmp_path), KraftNode(2, VOTERS, "abc")))

    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == VOTERS
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19094,CONTROLLER://127.0.0.1:19095"
    assert props["default.replication.factor"] == props["offsets.topic.replication.factor"] == "3"
    assert props["min.insync.replicas"] == props["transaction.state.log.min.isr"] == "2"


def test_a_single_node_is_configured_as_before(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, kafka=KafkaSettings(port=19092, controller_port=19093))

    alone = _parse(server_properties(settings, BrokerFiles(tmp_path)))

    assert alone["node.id"] == "1"
    assert alone["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert alone["offsets.topic.replication.factor"] == alone["min.insync.replicas"] == "1"
    assert _parse(server_properties(settings, BrokerFiles(tmp_path), KraftNode(1, "1@127.0.0.1:19093", "x"))) == alone


def test_secure_listeners_join_the_plaintext_one_each_under_its_own_prefix(tmp_path: Path) -> None:
    settings = _settings(tmp_path, port=19092, controller_port=19093)
    files = BrokerFiles(settings.paths.kafka)
    security = BrokerSecurity(
        listeners=(
            SecureListener("SASL_SSL", 19096, "SASL_SSL", sasl_mechanisms=("SCRAM-SHA-512",)),
            SecureListener("MTLS", 19094, "SSL", client_auth=True),
        ),
        certificate=tmp_path / "broker.pem",
        key=tmp_path / "broker-key.pem",
        client_ca=tmp_path / "ca.pem",
    )

    props = _parse(server_properties(settings, files, security=security))

    assert props["listeners"] == (
        "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093,SASL_SSL://127.0.0.1:19096,MTLS://127.0.0.1:19094"
    )
    assert props["advertised.listeners"] == (
        "PLAINTEXT://127.0.0.1:19092,SASL_SSL://127.0.0.1:19096,MTLS://127.0.0.1:19094"
    )
    assert props["listener.security.protocol.map"].endswith(",SASL_SSL:SASL_SSL,MTLS:SSL")
    assert props["inter.broker.listener.name"] == "PLAINTEXT"  # the broker's own traffic stays on loopback
    assert props["listener.name.sasl_ssl.ssl.keystore.location"] == str(files.keystore)
    assert props["listener.name.sasl_ssl.ssl.client.auth"] == "none"
    assert props["listener.name.sasl_ssl.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    )
    assert props["listener.name.mtls.ssl.client.auth"] == "required"
    assert props["listener.name.mtls.ssl.truststore.type"] == "PEM"
    assert props["listener.name.mtls.ssl.truststore.location"] == str(tmp_path / "ca.pem")
    assert not any(key.startswith("listener.name.mtls.sasl") for key in props)


def test_acls_put_the_secure_listeners_under_the_standard_authorizer(tmp_path: Path) -> None:
    settings = _settings(tmp_path, port=19092, controller_port=19093)
    listener = SecureListener("SASL_SSL", 19096, "SASL_SSL", sasl_mechanisms=("SCRAM-SHA-512",))
    security = BrokerSecurity((listener,), certificate=tmp_path / "broker.pem", key=tmp_path / "broker-key.pem")
    files = BrokerFiles(settings.paths.kafka)

    assert "authorizer.class.name" not in _parse(server_properties(settings, files, security=security))
    props = _parse(server_properties(settings, files, security=replace(security, acls=True)))

    assert props["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert props["super.users"] == "User:ANONYMOUS"  # the PLAINTEXT and controller listeners: the broker's own


def test_scram_users_are_written_at_format_time(tmp_path: Path) -> None:
    files = BrokerFiles(tmp_path)
    users = (ScramCredential("SCRAM-SHA-512", "rtap", "s3cret-1"), ScramCredential("SCRAM-SHA-256", "other", "x"))

    fmt = format_command(["java"], files, "abc", users)

    assert fmt[-4:] == [
        "--add-scram", "SCRAM-SHA-512=[name=rtap,password=s3cret-1]",
        "--add-scram", "SCRAM-SHA-256=[name=other,password=x]",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="without spaces"):
        ScramCredential("SCRAM-SHA-512", "rtap", "pass,word=x")  # the storage tool's syntax cannot quote these


def test_the_key_store_holds_the_key_then_the_certificate_chain(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("CERTIFICATE\n")
    (tmp_path / "key.pem").write_text("KEY\n")
    security = BrokerSecurity(listeners=(), certificate=tmp_path / "cert.pem", key=tmp_path / "key.pem")
    assert keystore_pem(security) == "KEY\nCERTIFICATE\n"
