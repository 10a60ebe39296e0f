"""``rtap status``'s view of the stream job's restarts, read from the job's state file."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from rtap.runtime.stack.status import collect, collector_check, restarts_check
from rtap.settings import CollectorSettings, KafkaSettings, Settings
from rtap.stream.restarts import JOB_STATE_FILE, JobState
from tests.support.paths import free_port

NOW = datetime(2026, 12, 2, 18, 40, 0, tzinfo=UTC)


def test_a_job_that_never_restarted_says_so() -> None:
    check = restarts_check(JobState(pid=1, started_at="2026-12-02T18:29:26+00:00"), NOW)
    assert check.ok
    assert check.detail == "none since the job started at 18:29:26 UTC"


def test_restarts_show_their_count_the_last_time_and_its_cause() -> None:
    state = JobState(
        pid=1,
        started_at="2026-12-02T18:29:26+00:00",
        restarts=1,
        last_restart_at="2026-12-02T18:39:10+00:00",
        last_error="Spark's JVM was killed by signal 9",
    )
    check = restarts_check(state, NOW)
    assert check.ok  # recovered: whether batches commit is the stream job's own check
    assert check.detail == (
        "1 restart since the job started at 18:29:26 UTC; last at 18:39:10 UTC (50 s ago): "
        "Spark's JVM was killed by signal 9"
    )
    state.restarts, state.last_restart_at = 12, "2026-12-02T18:10:00+00:00"
    assert restarts_check(state, NOW).detail.startswith("12 restarts since the job started at 18:29:26 UTC; ")
    assert "(30 min ago)" in restarts_check(state, NOW).detail


def _settings(tmp_path: Path) -> Settings:
    port = free_port()  # nothing listens: the broker check fails fast, the restarts check does not depend on it
    return Settings(
        data_dir=tmp_path, kafka=KafkaSettings(port=port, bootstrap_servers=f"127.0.0.1:{port}", controller_port=port)
    )


def test_status_reports_the_restarts_of_a_running_job_only(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    state = JobState(pid=os.getpid(), started_at="2026-12-02T18:29:26+00:00", restarts=2)
    state.last_restart_at, state.last_error = "2026-12-02T18:39:10+00:00", "batch failed (x)"
    state.write(settings.paths.run / JOB_STATE_FILE)
    (restarts,) = [check for check in collect(settings) if check.name == "restarts"]
    assert restarts.detail.startswith("2 restarts since the job started at 18:29:26 UTC; last at 18:39:10 UTC")

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    JobState(pid=int(gone.stdout), started_at=state.started_at, restarts=2).write(settings.paths.run / JOB_STATE_FILE)
    assert not [check for check in collect(settings) if check.name == "restarts"]


def test_a_collector_that_does_not_answer_is_an_unhealthy_line(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, collect=CollectorSettings(port=free_port()))
    check = collector_check(settings)
    assert check.name == "collector"
    assert not check.ok
    assert "does not answer" in check.detail
