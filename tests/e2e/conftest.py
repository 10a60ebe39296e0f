"""The e2e layer's fixtures: a broker per module, a headless Chromium page per module."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, sync_playwright

from rtap.runtime.broker import LocalKafka
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.pipeline import local_broker_settings


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    with LocalKafka(local_broker_settings(tmp_path_factory.mktemp("e2e-kafka"))) as kafka:
        yield kafka


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps` (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            # A fixed locale and zone: the tests compare the figures the page prints with the tables.
            yield browser.new_page(viewport={"width": 1680, "height": 1050}, locale="en-US", timezone_id="UTC")
        finally:
            browser.close()
