"""Spark's JVM killed under `rtap up` while events flow: the job restarts it, the rest of the stack stays up.

The JVM killed is the stream job's own (py4j's gateway, a child of `rtap up` started through spark-submit), never
the broker's java. kill -9 lands while traffic arrives at 10,000 events/s, once the job has committed batches of
it. The console says so in one line; `rtap status` and the metrics report the restart; the broker keeps its pid,
the dashboard and the warehouse socket answer during the restart; once the traffic has drained, every table equals
the generator's truth. And deaths in a row without a committed batch in between end `rtap up`, with one line that
says why and what to do.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from rtap.generate import GroundTruth
from rtap.ingest.producer import ProduceReport, produce_run
from tests.support.faults import measure, record, scaled, scrape
from tests.support.pipeline import UpProcess, assert_tables_equal_truth
from tests.support.terminal import NOISE

pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]

RATE = 10_000.0
# 25 s of traffic (100 s at the large scale) at least, and on until the job has restarted: it still flows when the
# job commits its first batch of it, however long that takes on a slow machine, up to a bound (150 s, 300 s).
TRAFFIC_S = scaled(25, 100)
MAX_EVENTS = scaled(1_500_000, 3_000_000)
KILLED = "Spark's JVM was killed by signal 9: restarting the stream job from its checkpoint in 2 s"
STARTED = "✓ Spark stream job running"
# What the console must not show besides the job's line: py4j's tracebacks (through the root logger too).
CONSOLE_NOISE = (*NOISE, "ERROR root", "py4j", "Connection refused")


def noise(console: str) -> list[str]:
    return [line for line in console.splitlines() if any(text in line for text in CONSOLE_NOISE)]


def test_spark_jvm_killed_under_rtap_up_restarts_from_its_checkpoint_exactly(tmp_path: Path) -> None:
    up = UpProcess(tmp_path)
    reports: list[ProduceReport] = []
    stop = threading.Event()
    producer = threading.Thread(
        target=lambda: reports.append(produce_run(up.settings, rate=RATE, count=MAX_EVENTS, seed=91, stop=stop)),
        daemon=True,
    )
    try:
        up.wait_console(STARTED)
        broker, jvm = up.broker(), up.spark_jvm()
        producer.start()
        traffic_ends = time.monotonic() + TRAFFIC_S
        up.wait_for("a committed batch of the traffic", lambda: up.processed() > 0)
        assert producer.is_alive(), "the traffic had ended before the kill"
        os.kill(jvm, signal.SIGKILL)

        up.wait_console(KILLED, timeout_s=120)
        # While the job restarts, the rest of the stack serves: the dashboard (through the warehouse), the
        # warehouse socket (`rtap status` reads through it), the broker.
        health = httpx.get(f"{up.dashboard_url}/api/health", timeout=60)
        assert health.status_code == 200, health.text
        status = up.rtap("status").stdout
        assert "restarts     1 restart since the job started at " in status, status
        assert "Spark's JVM was killed by signal 9" in status, status
        assert up.broker() == broker

        time.sleep(max(0.0, traffic_ends - time.monotonic()))
        stop.set()
        producer.join(timeout=300)
        (report,) = reports
        assert report.failed == 0, f"{report.failed} records not delivered"
        truth = GroundTruth.from_json(report.truth_path.read_bytes())
        produced = truth.totals().produced
        up.wait_for(f"{produced:,} records processed", lambda: up.processed() >= produced)

        assert up.broker() == broker, "the broker was restarted"
        assert up.spark_jvm() != jvm
        assert httpx.get(f"{up.dashboard_url}/api/health", timeout=60).status_code == 200
        after = up.rtap("status")
        assert after.returncode == 0, after.stdout + after.stderr  # recovered: healthy, with the restart on record
        assert "restarts     1 restart since" in after.stdout, after.stdout
        metrics = scrape(up.settings.metrics.port)
        assert metrics[("rtap_stream_restarts_total", "jvm")] == 1
        assert metrics[("rtap_stream_records_read_total", "")] == produced
        assert up.stop() == 0
    except BaseException:
        stop.set()
        up.kill()
        raise

    console = up.console()
    assert console.count("restarting the stream job") == 1, console
    assert not noise(console), console
    assert "Spark's JVM started again (restart 1 of this job)" in up.log()
    assert_tables_equal_truth(up.settings, truth)
    row = measure(up.settings, truth, "Spark JVM kill -9 under rtap up", f"once, while producing {RATE:.0f}/s")
    assert row.exact, row
    record(row)


def test_spark_jvm_deaths_in_a_row_end_rtap_up_with_one_line(tmp_path: Path) -> None:
    up = UpProcess(tmp_path, env={"RTAP_STREAM_MAX_CONSECUTIVE_FAILURES": "2"})
    try:
        up.wait_console(STARTED)
        os.kill(up.spark_jvm(), signal.SIGKILL)
        up.wait_console(f"{KILLED} (failure 1 in a row; the job stops at 2)", timeout_s=120)
        # The new JVM runs and the job is starting its query on it (an idle topic: no batch will commit).
        up.wait_for("the restarted query", lambda: up.log().count("micro-batches of at most") == 2, timeout_s=300)
        os.kill(up.spark_jvm(), signal.SIGKILL)
        code = up.wait()
    except BaseException:
        up.kill()
        raise

    console = up.console()
    assert code == 1, console
    assert console.splitlines()[-1] == (
        "error: stream job failed 2 times in a row without committing a batch; last: Spark's JVM was killed by "
        "signal 9; find what kills it (the kernel's OOM killer: `dmesg`; a container's memory limit), then start "
        "again: the job resumes from its checkpoint"
    )
    assert console.count("restarting the stream job") == 1, console
    assert not noise(console), console
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True).stdout.split()
    assert leftovers == [], "processes left running after rtap up gave up"
