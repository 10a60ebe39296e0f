"""Certificates a test makes for itself with the openssl command line: a CA, a broker certificate for loopback
(``127.0.0.1`` and ``localhost``), a client certificate for mutual TLS, and a second CA that signed none of them.

Keys are PKCS#8 PEM, the one key format both librdkafka and Kafka's Java client read; the client's key is
encrypted with a password when one is given, as an operator's usually is, with a scheme Java 17 can decrypt.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

DAYS = "2"


@dataclass(frozen=True)
class Certificates:
    """The PEM files of one test's public key infrastructure."""

    ca: Path
    broker_certificate: Path
    broker_key: Path
    client_certificate: Path
    client_key: Path
    client_key_password: str | None
    # A CA that signed nothing here: a client trusting only it must refuse the broker.
    other_ca: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def _ca(directory: Path, name: str) -> tuple[Path, Path]:
    certificate, key = directory / f"{name}.pem", directory / f"{name}-key.pem"
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(certificate),
        "-days", DAYS, "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return certificate, key


def _signed(directory: Path, name: str, ca: tuple[Path, Path], extensions: str) -> tuple[Path, Path]:
    certificate, key, request = directory / f"{name}.pem", directory / f"{name}-key.pem", directory / f"{name}.csr"
    extension_file = directory / f"{name}.ext"
    extension_file.write_text(extensions)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(request), "-subj", f"/CN={name}")
    _openssl(
        "x509", "-req", "-in", str(request), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
        "-out", str(certificate), "-days", DAYS, "-extfile", str(extension_file),
    )  # fmt: skip
    return certificate, key


def encrypt_key(key: Path, password: str, *, scheme: str = "PBE-SHA1-3DES") -> Path:
    """``key`` encrypted into a PKCS#8 file beside it: by default with PKCS#12's 3DES scheme, which Java 17 reads;
    ``scheme="PBES2"`` is OpenSSL 3's default, which Java 17 cannot decrypt."""
    encrypted = key.with_name(f"{key.stem}.{scheme}.pem")
    algorithm = ["-v2", "aes-256-cbc"] if scheme == "PBES2" else ["-v1", scheme]
    _openssl("pkcs8", "-topk8", *algorithm, "-in", str(key), "-out", str(encrypted), "-passout", f"pass:{password}")
    return encrypted


def make_certificates(directory: Path, client_key_password: str | None = None) -> Certificates:
    """A CA, the broker's and a client's certificates signed by it, and an unrelated CA, in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca(directory, "rtap-test-ca")
    other_ca, _ = _ca(directory, "rtap-other-ca")
    broker = _signed(
        directory,
        "broker",
        ca,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    client_certificate, client_key = _signed(directory, "rtap-client", ca, "extendedKeyUsage=clientAuth\n")
    if client_key_password is not None:
        client_key = encrypt_key(client_key, client_key_password)
    return Certificates(
        ca=ca[0],
        broker_certificate=broker[0],
        broker_key=broker[1],
        client_certificate=client_certificate,
        client_key=client_key,
        client_key_password=client_key_password,
        other_ca=other_ca,
    )
