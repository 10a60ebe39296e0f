"""Fixtures every test layer may use: free loopback ports and per-run unique names."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from rtap.runtime.ports import free_ports


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the kernel's choice for port 0)."""
    (port,) = free_ports(1, host)
    return port


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Names that cannot collide with another test or an earlier run sharing the same broker or database."""

    def make(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    return make
