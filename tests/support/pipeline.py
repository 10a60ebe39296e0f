"""Pipelines under test: a private broker's settings, an isolated pipeline on a shared broker, the stream
job as a separate process (so it can be killed), `rtap up` as an operator runs it (its own broker, dashboard
and data directory on free ports), and the tables against the generator's truth.

Each test gets its own topics and data directory on its module's broker, so runs never see each other's data.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rtap.contract.model import LEGACY_FORMAT
from rtap.generate import GroundTruth
from rtap.ingest.producer import produce_run
from rtap.runtime.broker import LocalKafka
from rtap.runtime.broker.config import BROKER_MAIN
from rtap.settings import (
    CollectorSettings,
    DashboardSettings,
    GeneratorSettings,
    KafkaSettings,
    MetricsSettings,
    Settings,
    StreamSettings,
    child_environment,
)
from rtap.warehouse import create_client
from rtap.warehouse.chdb.ownership import owner_pid
from tests.support.paths import REPO_ROOT, free_port

DRAIN_TIMEOUT_S = 600.0
# The generator's dirt in every e2e run: duplicates, late and malformed records, each class well represented.
DIRTY = GeneratorSettings(duplicate_rate=0.03, late_rate=0.02, malformed_rate=0.02, late_by_seconds=120)


def pipeline_settings(broker: LocalKafka, data_dir: Path, name: str, **stream: Any) -> Settings:
    """Settings for one isolated pipeline: its own topics (the previous system's format on ``<name>.legacy``)
    and data directory, a dirty generator."""
    kafka = broker.kafka_settings().model_copy(
        update={
            "topic": f"{name}.events",
            "dlq_topic": f"{name}.dlq",
            "browser_topic": f"{name}.browser",
            "source_topics": {f"{name}.legacy": LEGACY_FORMAT},
        }
    )
    return Settings(
        data_dir=data_dir,
        jars_dir=REPO_ROOT / "jars" / "lib",
        kafka=kafka,
        generator=DIRTY,
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


class UpProcess:
    """`rtap up --no-generator` in a data directory of its own, on free ports, its console in a file; with
    ``generator``, `rtap up` as `make run` starts it (its generator on); with ``external``, `rtap up --profile
    external` on that Kafka cluster instead of a broker of its own.

    ``settings`` are the stack's as the test process sees them (its broker, topics, warehouse), with the e2e
    generator's dirt, so that ``produce_run(up.settings, ...)`` feeds the stack and writes the truth.
    """

    def __init__(
        self,
        tmp_path: Path,
        env: dict[str, str] | None = None,
        external: KafkaSettings | None = None,
        *,
        generator: bool = False,
    ) -> None:
        base = local_broker_settings(tmp_path / "data")
        self.settings = base.model_copy(
            update={
                "kafka": base.kafka if external is None else external,
                "generator": DIRTY,
                "stream": StreamSettings(master="local[2]"),
                "dashboard": DashboardSettings(port=free_port()),
                "collect": CollectorSettings(port=free_port()),
                "metrics": MetricsSettings(port=free_port(), producer_port=0),
            }
        )
        self.env = {
            **child_environment(self.settings),
            "RTAP_KAFKA_CONTROLLER_PORT": str(self.settings.kafka.controller_port),
            "RTAP_DASHBOARD_PORT": str(self.settings.dashboard.port),
            "RTAP_COLLECT_PORT": str(self.settings.collect.port),
            **(env or {}),
        }
        self.console_path = tmp_path / "up-console.log"
        self.log_path = self.settings.paths.logs / "rtap-up.log"
        self._console = self.console_path.open("wb")
        generating = [] if generator else ["--no-generator"]
        args = generating if external is None else ["--profile", "external"]  # no generator there either
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rtap", "up", *args],
            env=self.env,
            stdout=self._console,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.dashboard.port}"

    @property
    def collector_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.collect.port}"

    def console(self) -> str:
        return self.console_path.read_text(errors="replace")

    def log(self) -> str:
        """rtap up's log file (Spark, Kafka clients, INFO lines); empty until it exists."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for(self, what: str, shown: Callable[[], bool], timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not shown():
            if self.process.poll() is not None:
                raise AssertionError(f"rtap up exited with {self.process.returncode} before {what}:\n{self.console()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout_s:.0f} s:\n{self.console()}")
            time.sleep(0.2)

    def wait_console(self, text: str, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        self.wait_for(repr(text), lambda: text in self.console(), timeout_s)

    def children(self, marker: str) -> list[int]:
        """Pids of this process's children whose command line contains ``marker``."""
        found = []
        for proc in Path("/proc").iterdir():
            try:
                stat = (proc / "stat").read_text()
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (OSError, ValueError):
                continue  # not a process, or gone meanwhile
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == self.process.pid and marker in command:
                found.append(int(proc.name))
        return found

    def spark_jvm(self) -> int:
        """The pid of the stream job's Spark JVM (py4j's gateway, launched through spark-submit)."""
        (pid,) = self.children("org.apache.spark.deploy.SparkSubmit")
        return pid

    def broker(self) -> int:
        (pid,) = self.children(BROKER_MAIN)
        return pid

    def rtap(self, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        """Another rtap command beside this stack (``rtap status``, ``rtap sql``), with its settings."""
        return subprocess.run(
            [sys.executable, "-m", "rtap", *args], env=self.env, capture_output=True, text=True, timeout=timeout_s
        )

    def processed(self) -> int:
        """Input records of committed batches, through the stack's warehouse socket."""
        with create_client(self.settings, readonly=True) as client:
            rows = client.query_rows("SELECT sum(input_rows) FROM {db}.pipeline_batches FINAL")
        return int(rows[0][0] or 0)

    def stop(self) -> int:
        """SIGTERM, as Ctrl-C or systemd stop it; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.wait()

    def wait(self, timeout_s: float = 180) -> int:
        code = self.process.wait(timeout=timeout_s)
        self._console.close()
        return code

    def kill(self) -> None:
        """After a failed test: the stack and its children (the broker, Spark's JVM) go with it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                for pid in self.children(""):
                    os.kill(pid, signal.SIGKILL)
                self.process.kill()
                self.process.wait(timeout=60)
        self._console.close()


def run_until_drained(settings: Settings, records: int | None = None, *, batches: int | None = None) -> None:
    """The job until it processed ``records`` records (and, with ``batches``, logged that many committed batches
    first), then SIGTERM (killed if anything fails on the way)."""
    job = StreamProcess(settings)
    try:
        if batches is not None:
            job.wait_logged(" records -> ", times=batches)  # the job's line per committed batch
        if records is not None:
            job.wait_processed(records)
        assert job.stop() == 0
    except BaseException:
        if job.process.poll() is None:
            job.kill()
        raise


def local_broker_settings(data_dir: Path) -> Settings:
    """Settings for a private local broker: free ports, data under ``data_dir``, the repo's jars."""
    port, controller_port = free_port(), free_port()
    kafka = KafkaSettings(
        bootstrap_servers=f"127.0.0.1:{port}", host="127.0.0.1", port=port, controller_port=controller_port
    )
    return Settings(data_dir=data_dir, jars_dir=REPO_ROOT / "jars" / "lib", kafka=kafka)


def produce(settings: Settings, count: int, seed: int) -> GroundTruth:
    report = produce_run(settings, rate=0, count=count, seed=seed)
    assert report.failed == 0
    return GroundTruth.from_json((settings.paths.truth / f"{report.run_id}.json").read_bytes())


def assert_tables_equal_truth(settings: Settings, truth: GroundTruth) -> None:
    """Every table against the truth: totals, every page window, every type window."""
    totals = truth.totals()
    with create_client(settings) as client:
        counts = client.query_rows(
            "SELECT (SELECT count() FROM {db}.events FINAL), (SELECT count() FROM {db}.dead_letters),"
            " (SELECT count() FROM {db}.late_events), (SELECT sum(duplicates) FROM {db}.pipeline_batches FINAL),"
            " (SELECT sum(input_rows) FROM {db}.pipeline_batches FINAL)"
        )[0]
        pages = client.query_rows("SELECT window_start, page_url, views, unique_users FROM {db}.page_views_1m FINAL")
        types = client.query_rows(
            "SELECT toUnixTimestamp(window_start), event_type, events, users, orders, revenue FROM {db}.events_1m FINAL"
        )
    assert counts == (totals.accepted, totals.dead_letters, totals.late, totals.duplicates, totals.produced)
    assert {(w, p): (v, u) for w, p, v, u in pages} == {
        (int(w.timestamp()), p): tuple(row) for (w, p), row in truth.page_views_1m().items()
    }
    assert {(w, t): (e, u, o, r) for w, t, e, u, o, r in types} == {
        (int(w.timestamp()), t): tuple(row) for (w, t), row in truth.events_1m().items()
    }
