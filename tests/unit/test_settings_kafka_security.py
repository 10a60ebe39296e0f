"""The Kafka clients' one configuration: TLS and SASL settings mapped for librdkafka and for Kafka's Java client
(Spark's source), plain mistakes refused in one line, secrets hidden. librdkafka itself checks each mapping: every
client kind is built from it (it refuses unknown properties, unreadable certificates and a wrong key password)."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from pydantic import ValidationError

from rtap.settings import (
    JAVA_REDACTION_REGEX,
    KafkaSettings,
    Settings,
    StreamSettings,
    child_environment,
    msk_region,
)
from tests.support.paths import REPO_ROOT
from tests.support.tls import Certificates, encrypt_key, make_certificates

MSK_BROKERS = (
    "b-1.clicks.ab12cd.c2.kafka.eu-west-1.amazonaws.com:9098,b-2.clicks.ab12cd.c2.kafka.eu-west-1.amazonaws.com:9098"
)
# Every librdkafka client of rtap, whatever its security: TCP_NODELAY, as Kafka's Java client (client_config).
NO_DELAY = {"socket.nagle.disable": True}


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"), client_key_password="key pass")


def _kafka(**values: Any) -> KafkaSettings:
    return KafkaSettings(_env_file=None, **values)  # type: ignore[call-arg]  # pydantic-settings' init-only option


def _scram(certificates: Certificates, **values: Any) -> KafkaSettings:
    return _kafka(
        bootstrap_servers="kafka-1.example.com:9096",
        security_protocol="SASL_SSL",
        ssl_ca_file=certificates.ca,
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="rtap",
        sasl_password='pa"ss\\word',
        **values,
    )


def _mutual_tls(certificates: Certificates) -> KafkaSettings:
    return _kafka(
        bootstrap_servers="kafka-1.example.com:9094",
        security_protocol="SSL",
        ssl_ca_file=certificates.ca,
        ssl_certificate_file=certificates.client_certificate,
        ssl_key_file=certificates.client_key,
        ssl_key_password=certificates.client_key_password,
    )


def _build_every_client(config: dict[str, Any]) -> None:
    """librdkafka's own check of a configuration: each client kind rtap makes, built and closed."""
    Producer(config).flush(0)
    AdminClient(config)
    Consumer({**config, "group.id": "rtap-config-check"}).close()


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    kafka = _kafka()
    assert kafka.client_config() == {
        "bootstrap.servers": "127.0.0.1:9092",
        "security.protocol": "PLAINTEXT",
        **NO_DELAY,
    }
    assert kafka.java_client_config() == {"bootstrap.servers": "127.0.0.1:9092", "security.protocol": "PLAINTEXT"}


def test_scram_over_tls_for_librdkafka(certificates: Certificates) -> None:
    config = _scram(certificates).client_config()

    assert config == {
        "bootstrap.servers": "kafka-1.example.com:9096",
        "security.protocol": "SASL_SSL",
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.ca.location": str(certificates.ca),
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "rtap",
        "sasl.password": 'pa"ss\\word',
        **NO_DELAY,
    }
    _build_every_client(config)


def test_scram_over_tls_for_the_java_client(certificates: Certificates) -> None:
    config = _scram(certificates).java_client_config()

    assert config == {
        "bootstrap.servers": "kafka-1.example.com:9096",
        "security.protocol": "SASL_SSL",
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.truststore.type": "PEM",
        "ssl.truststore.certificates": certificates.ca.read_text(),
        "sasl.mechanism": "SCRAM-SHA-512",
        # JAAS quoting: the password's quote and backslash are escaped, not the end of the value.
        "sasl.jaas.config": 'org.apache.kafka.common.security.scram.ScramLoginModule required username="rtap" '
        'password="pa\\"ss\\\\word";',
    }


def test_plain_uses_the_plain_login_module(certificates: Certificates) -> None:
    kafka = _scram(certificates).model_copy(update={"sasl_mechanism": "PLAIN"})

    assert kafka.java_client_config()["sasl.jaas.config"].startswith(
        "org.apache.kafka.common.security.plain.PlainLoginModule required username="
    )
    assert kafka.client_config()["sasl.mechanism"] == "PLAIN"


def test_mutual_tls_for_both_clients(certificates: Certificates) -> None:
    kafka = _mutual_tls(certificates)

    librdkafka = kafka.client_config()
    assert librdkafka["ssl.certificate.location"] == str(certificates.client_certificate)
    assert librdkafka["ssl.key.location"] == str(certificates.client_key)
    assert librdkafka["ssl.key.password"] == "key pass"
    _build_every_client(librdkafka)  # librdkafka decrypts the key here: a wrong password fails below
    java = kafka.java_client_config()
    assert java["ssl.keystore.type"] == "PEM"
    assert java["ssl.keystore.certificate.chain"] == certificates.client_certificate.read_text()
    assert java["ssl.keystore.key"] == certificates.client_key.read_text()  # still encrypted: the password goes too
    assert java["ssl.key.password"] == "key pass"


def test_librdkafka_refuses_a_wrong_key_password(certificates: Certificates) -> None:
    config = {**_mutual_tls(certificates).client_config(), "ssl.key.password": "not the password"}
    with pytest.raises(KafkaException, match=r"ssl\.key"):
        Producer(config)


def test_endpoint_identification_can_be_turned_off(certificates: Certificates) -> None:
    kafka = _scram(certificates, ssl_endpoint_identification=False)
    assert kafka.client_config()["ssl.endpoint.identification.algorithm"] == "none"
    assert kafka.java_client_config()["ssl.endpoint.identification.algorithm"] == ""


def test_msk_iam_signs_oauthbearer_tokens_for_librdkafka(monkeypatch: pytest.MonkeyPatch) -> None:
    # Credentials from the environment (the default chain's first source); signing is local, no AWS is asked.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDRTAPTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "rtap-test-secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    kafka = _kafka(bootstrap_servers=MSK_BROKERS, security_protocol="SASL_SSL", sasl_mechanism="AWS_MSK_IAM")

    config = kafka.client_config()
    token, expiry = config.pop("oauth_cb")("")

    assert config == {
        "bootstrap.servers": MSK_BROKERS,
        "security.protocol": "SASL_SSL",
        "ssl.endpoint.identification.algorithm": "https",
        "sasl.mechanism": "OAUTHBEARER",
        **NO_DELAY,
    }
    url = urlparse(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
    query = parse_qs(url.query)
    assert url.hostname == "kafka.eu-west-1.amazonaws.com"  # the region read from the brokers' names
    assert query["Action"] == ["kafka-cluster:Connect"]
    assert query["X-Amz-Credential"][0].startswith("AKIDRTAPTEST/")
    assert "/eu-west-1/kafka-cluster/" in query["X-Amz-Credential"][0]
    assert expiry == pytest.approx(int(query["X-Amz-Expires"][0]) + _epoch(query["X-Amz-Date"][0]), abs=2)
    _build_every_client(kafka.client_config())


def _epoch(amz_date: str) -> float:
    from datetime import UTC, datetime

    return datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()


def test_msk_iam_for_the_java_client() -> None:
    kafka = _kafka(
        bootstrap_servers="b-1.x.y.c1.kafka.us-east-1.amazonaws.com:9098",
        security_protocol="SASL_SSL",
        sasl_mechanism="AWS_MSK_IAM",
        aws_profile="analytics",
    )
    assert kafka.java_client_config() == {
        "bootstrap.servers": "b-1.x.y.c1.kafka.us-east-1.amazonaws.com:9098",
        "security.protocol": "SASL_SSL",
        "ssl.endpoint.identification.algorithm": "https",
        "sasl.mechanism": "AWS_MSK_IAM",
        "sasl.jaas.config": 'software.amazon.msk.auth.iam.IAMLoginModule required awsProfileName="analytics";',
        "sasl.client.callback.handler.class": "software.amazon.msk.auth.iam.IAMClientCallbackHandler",
    }


def test_the_msk_region_comes_from_the_broker_names_or_the_setting() -> None:
    assert msk_region(MSK_BROKERS) == "eu-west-1"
    assert msk_region("boot-abc.c1.kafka-serverless.ap-southeast-2.amazonaws.com:9098") == "ap-southeast-2"
    assert msk_region("kafka-1.example.com:9098") is None
    kafka = _kafka(
        bootstrap_servers="kafka.internal:9098", security_protocol="SASL_SSL", sasl_mechanism="AWS_MSK_IAM",
        aws_region="us-west-2",
    )  # fmt: skip
    assert kafka.msk_iam_region == "us-west-2"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"security_protocol": "SASL_SSL"}, "SASL_SSL needs RTAP_KAFKA_SASL_MECHANISM"),
        ({"sasl_mechanism": "PLAIN", "sasl_username": "u", "sasl_password": "p"}, "takes effect only with"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512"}, "needs RTAP_KAFKA_SASL_USERNAME"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER"}, "sasl_mechanism"),
        ({"security_protocol": "SSL", "ssl_ca_file": "/nonexistent/ca.pem"}, "RTAP_KAFKA_SSL_CA_FILE=.*no such file"),
        ({"ssl_ca_file": "{ca}"}, "take effect only with RTAP_KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL"),
        ({"security_protocol": "SSL", "ssl_certificate_file": "{certificate}"}, "needs both"),
        ({"security_protocol": "SSL", "ssl_key_password": "x"}, "without RTAP_KAFKA_SSL_KEY_FILE"),
        (
            {"security_protocol": "SSL", "ssl_certificate_file": "{certificate}", "ssl_key_file": "{key}"},
            "is encrypted: set RTAP_KAFKA_SSL_KEY_PASSWORD",
        ),
        (
            {"security_protocol": "SSL", "ssl_certificate_file": "{certificate}", "ssl_key_file": "{certificate}"},
            "not a PKCS#8 PEM key",
        ),
        (
            {
                "bootstrap_servers": "kafka.example.com:9092", "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "PLAIN", "sasl_username": "u", "sasl_password": "p",
            },
            "would send the password in clear text",
        ),
        (
            {"bootstrap_servers": MSK_BROKERS, "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "AWS_MSK_IAM"},
            "AWS_MSK_IAM needs RTAP_KAFKA_SECURITY_PROTOCOL=SASL_SSL",
        ),
        (
            {"bootstrap_servers": "kafka.internal:9098", "security_protocol": "SASL_SSL",
             "sasl_mechanism": "AWS_MSK_IAM"},
            "set RTAP_KAFKA_AWS_REGION",
        ),
        (
            {
                "bootstrap_servers": MSK_BROKERS, "security_protocol": "SASL_SSL", "sasl_mechanism": "AWS_MSK_IAM",
                "sasl_username": "u", "sasl_password": "p",
            },
            "unset RTAP_KAFKA_SASL_USERNAME",
        ),
        ({"aws_region": "eu-west-1"}, "are for RTAP_KAFKA_SASL_MECHANISM=AWS_MSK_IAM"),
    ],
)  # fmt: skip
def test_plain_mistakes_are_refused_in_one_line(
    certificates: Certificates, values: dict[str, Any], message: str
) -> None:
    files = {"ca": certificates.ca, "certificate": certificates.client_certificate, "key": certificates.client_key}
    resolved = {name: value.format(**files) if isinstance(value, str) else value for name, value in values.items()}
    with pytest.raises(ValidationError, match=message) as refused:
        _kafka(**resolved)
    assert len(refused.value.errors()) == 1


def test_a_key_java_cannot_decrypt_is_refused(certificates: Certificates) -> None:
    pbes2 = encrypt_key(certificates.client_key.with_name("rtap-client-key.pem"), "key pass", scheme="PBES2")
    with pytest.raises(ValidationError, match=r"PBES2 .* re-encrypt it with `openssl pkcs8 -topk8 -v1 PBE-SHA1-3DES"):
        _kafka(
            security_protocol="SSL", ssl_certificate_file=certificates.client_certificate, ssl_key_file=pbes2,
            ssl_key_password="key pass",
        )  # fmt: skip


def test_plain_over_plaintext_stays_allowed_on_loopback() -> None:
    kafka = _kafka(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_username="u", sasl_password="p")
    assert kafka.client_config()["sasl.mechanism"] == "PLAIN"


def test_secrets_stay_out_of_reprs_and_every_java_secret_is_redacted_by_spark(certificates: Certificates) -> None:
    secret_settings = [_scram(certificates), _mutual_tls(certificates)]
    iam = _kafka(bootstrap_servers=MSK_BROKERS, security_protocol="SASL_SSL", sasl_mechanism="AWS_MSK_IAM")
    redaction = re.compile(JAVA_REDACTION_REGEX)
    for kafka in secret_settings:
        assert 'pa"ss' not in repr(kafka)
        assert "key pass" not in repr(kafka)
    secret_keys = {"sasl.jaas.config", "ssl.keystore.key", "ssl.key.password"}
    for kafka in [*secret_settings, iam]:
        for key, value in kafka.java_client_config().items():
            # Spark hides an option whose key or value matches (Utils.redact); the source's keys carry "kafka.".
            hidden = bool(redaction.search(f"kafka.{key}") or redaction.search(value))
            assert hidden == (key in secret_keys), key


def test_the_local_broker_view_drops_every_security_setting(certificates: Certificates) -> None:
    plain = _mutual_tls(certificates).plaintext_at("127.0.0.1:19092")
    assert plain.client_config() == {
        "bootstrap.servers": "127.0.0.1:19092",
        "security.protocol": "PLAINTEXT",
        **NO_DELAY,
    }
    assert plain.java_client_config() == {"bootstrap.servers": "127.0.0.1:19092", "security.protocol": "PLAINTEXT"}


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, certificates: Certificates) -> None:
    monkeypatch.setenv("RTAP_KAFKA_BOOTSTRAP_SERVERS", "kafka-1.example.com:9096")
    monkeypatch.setenv("RTAP_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("RTAP_KAFKA_SSL_CA_FILE", str(certificates.ca))
    monkeypatch.setenv("RTAP_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("RTAP_KAFKA_SASL_USERNAME", "rtap")
    monkeypatch.setenv("RTAP_KAFKA_SASL_PASSWORD", 'pa"ss\\word')
    assert _kafka().client_config() == _scram(certificates).client_config()


def test_an_unreadable_path_is_not_mistaken_for_a_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="no such file"):
        _kafka(security_protocol="SSL", ssl_ca_file=tmp_path)


def test_the_security_page_names_every_security_setting_and_no_other() -> None:
    page = (REPO_ROOT / "docs" / "kafka-security.md").read_text()
    named = set(re.findall(r"\bRTAP_[A-Z_]*[A-Z]\b(?!_\*)", page))  # not the prefixes RTAP_KAFKA_*
    known = {f"RTAP_KAFKA_{name.upper()}" for name in KafkaSettings.model_fields} | {
        f"RTAP_STREAM_{name.upper()}" for name in StreamSettings.model_fields
    }
    assert named <= known, sorted(named - known)
    security = {"security_protocol", "sasl_mechanism", "sasl_username", "sasl_password", "aws_region", "aws_profile"}
    security |= {name for name in KafkaSettings.model_fields if name.startswith("ssl_")}
    assert {f"RTAP_KAFKA_{name.upper()}" for name in security} <= named
    for path in re.findall(r"\]\((\.\./[^)#]+)\)", page):  # every file the page links to exists
        assert (REPO_ROOT / "docs" / path).resolve().exists(), path


def test_a_child_process_connects_as_its_parent(monkeypatch: pytest.MonkeyPatch, certificates: Certificates) -> None:
    parent = Settings(kafka=_mutual_tls(certificates).model_copy(update={"ssl_endpoint_identification": False}))
    for name, value in child_environment(parent).items():
        if name.startswith("RTAP_"):
            monkeypatch.setenv(name, value)
    child = _kafka()
    assert child.client_config() == parent.kafka.client_config()
    assert child.java_client_config() == parent.kafka.java_client_config()
