"""A real chDB engine per test module, with the migrations applied once.

chDB runs one data directory per process, so each module opens its own directory and closes it at
the end (other stages' tests in the same pytest process can then open theirs).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtap.settings import Settings, WarehouseSettings
from rtap.warehouse import WarehouseClient, create_client
from rtap.warehouse.migrate import apply_migrations


def make_settings(data_dir: Path) -> Settings:
    database = f"rtap_test_{uuid.uuid4().hex[:8]}"
    return Settings(data_dir=data_dir, warehouse=WarehouseSettings(backend="chdb", database=database))


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(tmp_path_factory.mktemp("chdb"))


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[WarehouseClient]:
    with create_client(settings) as warehouse:
        apply_migrations(warehouse)
        yield warehouse
