"""Loopback ports: which are free, which are taken, who answers. For the daemons rtap starts and their checks."""

from __future__ import annotations

import contextlib
import errno
import socket
import ssl
from pathlib import Path

from rtap.errors import ConfigError, PortInUseError, ServiceError
from rtap.settings import LOOPBACK


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """``count`` distinct TCP ports nothing listens on right now (the kernel's choices for port 0).

    Every probe stays bound until all are chosen: one at a time, the kernel may hand out a port twice.
    """
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for probe in probes:
            probe.bind((host, 0))
        return [int(probe.getsockname()[1]) for probe in probes]


def port_in_use(host: str, port: int) -> bool:
    """Whether binding ``host:port`` fails, as it would for the broker.

    SO_REUSEADDR is set because the JVM sets it on its server sockets: a port in TIME_WAIT is free for
    the broker, a port with a listener is not.
    """
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {host} does not resolve ({exc.strerror})") from exc
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                raise ConfigError(f"cannot listen on {host}:{port}: {host} is not an address of this machine") from exc
            return True
    return False


def accepts(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on ``host:port`` within a second."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def listening_socket(host: str, port: int, what: str) -> socket.socket:
    """A TCP socket listening on ``host:port`` (port 0: a free one), bound here so that a taken port is one line
    (:class:`~rtap.errors.PortInUseError`) before a server starts, not a log line from inside it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # SO_REUSEADDR only lets a port in TIME_WAIT be reused; a live listener still makes bind fail.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(host, port, what) from exc
        raise ServiceError(f"cannot listen on {host}:{port} for {what}: {exc.strerror}") from exc
    sock.set_inheritable(True)
    return sock


def http_url(host: str, port: int, scheme: str = "http") -> str:
    """The URL of a server on ``host``:``port``, an IPv6 address in brackets."""
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"


def server_tls_context(certificate: Path, key: Path, what: str) -> ssl.SSLContext:
    """A server's TLS context from a PEM certificate and key, or one clear line naming ``what`` and the files."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certificate, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{what}'s TLS certificate {certificate} and key {key} cannot be used: {exc}") from exc
    return context
