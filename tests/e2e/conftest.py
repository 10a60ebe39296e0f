"""End-to-end plumbing: a real broker, the stream job as a separate process (so it can be killed), the truth.

Each test gets its own topic and data directory on the module's broker, so runs never see each other's data.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from rtap.broker import LocalKafka
from rtap.settings import GeneratorSettings, MetricsSettings, Settings, StreamSettings, child_environment
from rtap.warehouse import create_client
from rtap.warehouse.chdb.ownership import owner_pid
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS
from tests.integration.conftest import REPO_ROOT, local_broker_settings

DRAIN_TIMEOUT_S = 600.0


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    with LocalKafka(local_broker_settings(tmp_path_factory.mktemp("e2e-kafka"))) as kafka:
        yield kafka


def pipeline_settings(broker: LocalKafka, data_dir: Path, name: str, **stream: object) -> Settings:
    """Settings for one isolated pipeline: its own topics and data directory, a dirty generator."""
    kafka = broker.kafka_settings().model_copy(update={"topic": f"{name}.events", "dlq_topic": f"{name}.dlq"})
    return Settings(
        data_dir=data_dir,
        jars_dir=REPO_ROOT / "jars" / "lib",
        kafka=kafka,
        generator=GeneratorSettings(duplicate_rate=0.03, late_rate=0.02, malformed_rate=0.02, late_by_seconds=120),
        stream=StreamSettings(master="local[2]", trigger_interval_s=0.5, **stream),
        metrics=MetricsSettings(port=0, producer_port=0),  # any free port: tests may overlap on one machine
    )


class StreamProcess:
    """`rtap stream` in its own process group: stopped with SIGTERM, or killed with SIGKILL like a crash."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        log_path = settings.data_dir / "stream.log"
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rtap", "stream"],
            env=child_environment(settings),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=settings.data_dir,
        )

    def log_tail(self, lines: int = 30) -> str:
        text = (self.settings.data_dir / "stream.log").read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def processed(self) -> int:
        """Input records of committed batches (read through the job's read-only channel)."""
        if owner_pid(self.settings.paths.chdb) != self.process.pid:
            # The job has not opened the warehouse yet: opening it here would hold the directory's lock while
            # the job starts, and on a loaded machine for longer than the job waits for it.
            return 0
        with create_client(self.settings, readonly=True) as client:
            rows = client.query_rows("SELECT sum(input_rows) FROM {db}.pipeline_batches FINAL")
        return int(rows[0][0] or 0)

    def wait_processed(self, at_least: int, timeout_s: float = DRAIN_TIMEOUT_S) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"stream job exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                done = self.processed()
            except Exception:  # noqa: BLE001 - the job is still starting: no channel, no tables yet
                done = 0
            if done >= at_least:
                return done
            time.sleep(1.0)
        raise AssertionError(f"only {self.processed()} of {at_least} records processed:\n{self.log_tail()}")

    def wait_logged(self, text: str, times: int = 1, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        """Until the job's log has ``text`` ``times`` times: reads a file, so it notices within a fraction of a
        second (``processed`` asks the job's warehouse, which can take seconds while the job writes)."""
        deadline = time.monotonic() + timeout_s
        path = self.settings.data_dir / "stream.log"
        while path.read_text(errors="replace").count(text) < times:
            if self.process.poll() is not None:
                raise AssertionError(f"stream job exited with {self.process.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not logged {times} times within {timeout_s:.0f} s:\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self) -> int:
        """SIGTERM to the main process, as `docker stop` or systemd send it."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=120)
        self._log.close()
        return code

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=60)
        self._log.close()


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
