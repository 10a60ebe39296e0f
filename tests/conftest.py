"""Fixtures every test layer may use (free loopback ports, per-run unique names), and each layer's marker.

A test's layer is its directory: tests/unit (no services), tests/integration (real services started per
module), tests/e2e (the whole pipeline). The markers ``unit``, ``integration`` and ``e2e`` are given here by
directory, never by hand, so `pytest -m "not e2e"` selects exactly the directories it says; the markers
that say what a test drives (``browser``, ``faults``, ``cluster``) stay in its module.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from rtap.runtime.ports import free_ports

TESTS = Path(__file__).resolve().parent
LAYERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        layer = item.path.resolve().relative_to(TESTS).parts[0]
        if layer in LAYERS:
            item.add_marker(layer)


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
