"""Every Kafka client rtap makes, over the protocols a team's cluster speaks, against a real broker that this module
configures with certificates it makes: a SASL_SSL listener (SCRAM-SHA-512 over TLS) and a mutual-TLS listener
(SSL, a client certificate required, the client's key encrypted).

Over each: the producer (``rtap produce``'s code path), the admin client (topic set-up), the stream job in its own
process (Spark's Kafka source, a Java client, configured from the same settings), its dead-letter publisher and lag
probe, and `rtap reconcile`. A wrong password, a CA that did not sign the broker and a missing client certificate
each end an rtap command in one line, within seconds.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from rtap.runtime.broker import LocalKafka
from rtap.runtime.broker.config import BrokerSecurity, ScramCredential, SecureListener
from rtap.settings import KafkaSettings, Settings, child_environment
from rtap.warehouse import create_client
from tests.support.paths import free_port
from tests.support.pipeline import (
    StreamProcess,
    assert_tables_equal_truth,
    local_broker_settings,
    pipeline_settings,
    produce,
)
from tests.support.tls import Certificates, make_certificates

pytestmark = pytest.mark.timeout(900)

USER, PASSWORD = "rtap-job", "Scram-Pass-7f3e1b"
KEY_PASSWORD = "client key pass"
# Each refusal ends the command within this (librdkafka alone would retry for ever).
REFUSAL_S = 20.0


@dataclass(frozen=True)
class SecuredBroker:
    broker: LocalKafka
    certificates: Certificates
    sasl_ssl: str
    mutual_tls: str


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredBroker]:
    root = tmp_path_factory.mktemp("kafka-security")
    certificates = make_certificates(root / "tls", client_key_password=KEY_PASSWORD)
    sasl_port, mtls_port = free_port(), free_port()
    security = BrokerSecurity(
        listeners=(
            SecureListener("SASL_SSL", sasl_port, "SASL_SSL", sasl_mechanisms=("SCRAM-SHA-512",)),
            SecureListener("MTLS", mtls_port, "SSL", client_auth=True),
        ),
        certificate=certificates.broker_certificate,
        key=certificates.broker_key,
        client_ca=certificates.ca,
        scram_credentials=(ScramCredential("SCRAM-SHA-512", USER, PASSWORD),),
    )
    with LocalKafka(local_broker_settings(root / "broker"), security=security) as broker:
        yield SecuredBroker(broker, certificates, f"127.0.0.1:{sasl_port}", f"127.0.0.1:{mtls_port}")


def _with_kafka(settings: Settings, **security: Any) -> Settings:
    """``settings`` whose clients connect with ``security``, validated as the environment's values would be."""
    kafka = settings.kafka.model_dump(include={"topic", "dlq_topic", "source_topics", "partitions"})
    return settings.model_copy(update={"kafka": KafkaSettings(_env_file=None, **kafka, **security)})  # type: ignore[call-arg]


def sasl_ssl(secured: SecuredBroker, settings: Settings, password: str = PASSWORD, ca: Path | None = None) -> Settings:
    return _with_kafka(
        settings,
        bootstrap_servers=secured.sasl_ssl,
        security_protocol="SASL_SSL",
        ssl_ca_file=ca or secured.certificates.ca,
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=USER,
        sasl_password=password,
    )


def mutual_tls(secured: SecuredBroker, settings: Settings, *, client_certificate: bool = True) -> Settings:
    certificates = secured.certificates
    identity = (
        {
            "ssl_certificate_file": certificates.client_certificate,
            "ssl_key_file": certificates.client_key,
            "ssl_key_password": KEY_PASSWORD,
        }
        if client_certificate
        else {}
    )
    return _with_kafka(
        settings, bootstrap_servers=secured.mutual_tls, security_protocol="SSL", ssl_ca_file=certificates.ca, **identity
    )


def dead_letter_sources(kafka: KafkaSettings) -> set[tuple[str, str, str]]:
    """The (topic, partition, offset) of every record on the dead-letter topic, read over the same protocol."""
    consumer = Consumer({**kafka.client_config(), "group.id": "rtap-test-dlq", "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(kafka.dlq_topic, timeout=30).topics[kafka.dlq_topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(kafka.dlq_topic, p), timeout=30) for p in partitions}
        consumer.assign([TopicPartition(kafka.dlq_topic, p, low) for p, (low, high) in ends.items() if high > low])
        remaining = sum(high - low for low, high in ends.values())
        sources: set[tuple[str, str, str]] = set()
        deadline = time.monotonic() + 60
        while remaining and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=1.0):
                assert message.error() is None, message.error()
                headers = {h[0]: h[1].decode() for h in message.headers() or [] if isinstance(h[1], bytes)}
                source = ("rtap.source.topic", "rtap.source.partition", "rtap.source.offset")
                sources.add((headers[source[0]], headers[source[1]], headers[source[2]]))
                remaining -= 1
        assert remaining == 0, f"{remaining} dead letters not read"
        return sources
    finally:
        consumer.close()


def run_pipeline(settings: Settings, events: int, seed: int) -> None:
    """Produce a dirty run, run `rtap stream` over it until drained, and check every table, the dead-letter
    topic, the lag the job measured and `rtap reconcile`."""
    truth = produce(settings, count=events, seed=seed)
    totals = truth.totals()
    job = StreamProcess(settings)
    job.wait_processed(totals.produced)
    assert job.stop() == 0, job.log_tail()

    assert_tables_equal_truth(settings, truth)
    assert len(dead_letter_sources(settings.kafka)) == totals.dead_letters
    with create_client(settings) as client:
        rows = client.query_rows("SELECT kafka_lag FROM {db}.pipeline_batches FINAL ORDER BY batch_id")
    lags = [row[0] for row in rows]
    assert lags[0] > 0, lags  # the probe saw the backlog the first batch left...
    assert lags[-1] == 0, lags  # ...and the end of the topic once it was drained
    reconcile = subprocess.run(
        [sys.executable, "-m", "rtap", "reconcile"], env=child_environment(settings), capture_output=True, text=True
    )
    assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr
    log = (settings.data_dir / "stream.log").read_text(errors="replace")
    assert PASSWORD not in log
    assert KEY_PASSWORD not in log


def test_scram_over_tls_end_to_end(secured: SecuredBroker, tmp_path: Path) -> None:
    settings = sasl_ssl(secured, pipeline_settings(secured.broker, tmp_path, "sasl", max_batch_records=2_000))
    run_pipeline(settings, events=6_000, seed=25)


def test_mutual_tls_end_to_end(secured: SecuredBroker, tmp_path: Path) -> None:
    settings = mutual_tls(secured, pipeline_settings(secured.broker, tmp_path, "mtls", max_batch_records=500))
    run_pipeline(settings, events=1_000, seed=26)


def _rtap_fails_in_one_line(settings: Settings, *args: str) -> str:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "rtap", *args],
        env={**child_environment(settings), "RTAP_METRICS_ENABLED": "false"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert result.returncode != 0, result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert elapsed < REFUSAL_S, f"{elapsed:.1f} s: {errors[0]}"
    return errors[0]


def test_a_wrong_password_is_one_line(secured: SecuredBroker, tmp_path: Path) -> None:
    settings = sasl_ssl(secured, pipeline_settings(secured.broker, tmp_path, "badpw"), password="not-the-password")
    line = _rtap_fails_in_one_line(settings, "produce", "--count", "10")
    assert f"refused the login of {USER}" in line
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in line
    assert "not-the-password" not in line
    # The stream job's first contact is the same admin client's: it stops before Spark starts.
    assert "refused the login" in _rtap_fails_in_one_line(settings, "stream")


def test_a_broker_certificate_the_ca_did_not_sign_is_one_line(secured: SecuredBroker, tmp_path: Path) -> None:
    base = pipeline_settings(secured.broker, tmp_path, "untrusted")
    settings = sasl_ssl(secured, base, ca=secured.certificates.other_ca)
    line = _rtap_fails_in_one_line(settings, "produce", "--count", "10")
    assert "TLS handshake" in line
    assert "certificate verify failed" in line
    assert "RTAP_KAFKA_SSL_CA_FILE" in line


def test_a_missing_client_certificate_is_one_line(secured: SecuredBroker, tmp_path: Path) -> None:
    settings = mutual_tls(secured, pipeline_settings(secured.broker, tmp_path, "nocert"), client_certificate=False)
    line = _rtap_fails_in_one_line(settings, "produce", "--count", "10")
    assert "refused rtap's TLS client certificate" in line
