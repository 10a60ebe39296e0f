"""The two 50k-send generator runs several modules here read (made once per session; tests only read them)."""

from __future__ import annotations

import pytest

from tests.support.clickstream import CLEAN, DIRTY, Run, run


@pytest.fixture(scope="session")
def dirty() -> Run:
    """Default shop, dirt rates raised so 50k sends give tight estimates."""
    return run(50_000, **DIRTY)


@pytest.fixture(scope="session")
def clean() -> Run:
    return run(50_000, **CLEAN)
