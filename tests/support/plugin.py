"""The fixtures every test layer may use, and each layer's marker (registered in pyproject.toml's addopts).

A test's layer is its directory: tests/unit (no services), tests/integration (real services started per
module), tests/e2e (the whole pipeline). The markers ``unit``, ``integration`` and ``e2e`` are given here by
directory, never by hand, so `pytest -m "not e2e"` selects exactly the directories it says; the markers
that say what a test drives (``browser``, ``faults``, ``cluster``) stay in its module.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

TESTS = Path(__file__).resolve().parents[1]
LAYERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        layer = item.path.resolve().relative_to(TESTS).parts[0]
        if layer in LAYERS:
            item.add_marker(layer)


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Names that cannot collide with another test or an earlier run sharing the same broker or database."""

    def make(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    return make


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    os.environ["PYSPARK_PYTHON"] = sys.executable  # the parse stage's workers need rtap (see rtap.stream.spark)
    session = (
        SparkSession.builder.master("local[1]")
        .appName("rtap-unit")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
