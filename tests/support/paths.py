"""The repository's root and free loopback ports."""

from __future__ import annotations

from pathlib import Path

from rtap.runtime.ports import free_ports

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the kernel's choice for port 0)."""
    (port,) = free_ports(1, host)
    return port
