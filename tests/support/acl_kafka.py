"""A real local KRaft broker set up as a team's cluster would be: a SASL_SSL listener (SCRAM-SHA-512 logins,
certificates made with openssl) and Kafka's StandardAuthorizer, so that a login may do only what an ACL allows.

The PLAINTEXT listener is the administrator's (``User:ANONYMOUS``, the super user): :meth:`AclKafka.admin`
settings create topics and :meth:`AclKafka.allow` grants ACLs through it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka.admin import (  # type: ignore[attr-defined]  # not in the stubs
    AclBinding,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from rtap.kafka_admin import admin_client
from rtap.runtime.broker import LocalKafka
from rtap.runtime.broker.config import BrokerSecurity, ScramCredential, SecureListener
from rtap.settings import KafkaSettings
from tests.support.paths import free_port
from tests.support.pipeline import local_broker_settings
from tests.support.tls import Certificates, make_certificates


@dataclass(frozen=True)
class AclKafka:
    broker: LocalKafka
    certificates: Certificates
    sasl_ssl: str

    @property
    def admin(self) -> KafkaSettings:
        """The administrator's settings: the PLAINTEXT listener, the super user."""
        return self.broker.kafka_settings()

    def allow(self, username: str, prefix: str, *operations: AclOperation) -> None:
        """Let ``username`` do ``operations`` on every topic whose name starts with ``prefix``."""
        bindings = [
            AclBinding(
                ResourceType.TOPIC,
                prefix,
                ResourcePatternType.PREFIXED,
                f"User:{username}",
                "*",
                operation,
                AclPermissionType.ALLOW,
            )
            for operation in operations
        ]
        admin = admin_client(self.admin)  # held until the answers came: a dropped client cancels its requests
        for future in admin.create_acls(bindings, request_timeout=30).values():
            future.result(timeout=30)

    def login(self, username: str, password: str, **values: Any) -> KafkaSettings:
        """Settings for the SASL_SSL listener as ``username``, validated as the environment's values would be."""
        security = {
            "bootstrap_servers": self.sasl_ssl,
            "security_protocol": "SASL_SSL",
            "ssl_ca_file": self.certificates.ca,
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": username,
            "sasl_password": password,
        }
        return KafkaSettings(_env_file=None, **{**security, **values})  # type: ignore[call-arg]


@contextlib.contextmanager
def acl_kafka(root: Path, users: dict[str, str]) -> Iterator[AclKafka]:
    """The broker, its data and certificates under ``root``, with a SCRAM login for each of ``users``
    (name: password) and no ACL yet."""
    certificates = make_certificates(root / "tls")
    port = free_port()
    security = BrokerSecurity(
        listeners=(SecureListener("SASL_SSL", port, "SASL_SSL", sasl_mechanisms=("SCRAM-SHA-512",)),),
        certificate=certificates.broker_certificate,
        key=certificates.broker_key,
        scram_credentials=tuple(ScramCredential("SCRAM-SHA-512", name, password) for name, password in users.items()),
        acls=True,
    )
    with LocalKafka(local_broker_settings(root / "broker"), security=security) as broker:
        yield AclKafka(broker, certificates, f"127.0.0.1:{port}")
