"""`rtap up` as a user runs it: the whole local stack in one process, checked by `rtap validate`, `rtap status`
and a real browser on the live dashboard, then stopped with SIGTERM, leaving nothing running. Its output goes to
a file here (no terminal): plain status lines, none of Spark's or librdkafka's output, which is in its log."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.support.browser import ARTIFACTS, chart_data, wait_until_every_panel_has_data
from tests.support.paths import REPO_ROOT, free_port
from tests.support.terminal import NOISE

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]


def run(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rtap", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def events_shown(page: Page) -> float:
    """The newest minute's count summed over the event types drawn by the live chart."""
    return float(sum(trace["y"][-1] for trace in chart_data(page, "events_by_type")))


def test_up_serves_live_data_that_validate_status_and_a_browser_accept(tmp_path: Path, page: Page) -> None:
    kafka_port, controller_port, dashboard_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "RTAP_DATA_DIR": str(tmp_path / "data"),
        "RTAP_JARS_DIR": str(REPO_ROOT / "jars" / "lib"),
        "RTAP_KAFKA_PORT": str(kafka_port),
        "RTAP_KAFKA_CONTROLLER_PORT": str(controller_port),
        "RTAP_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_port}",
        "RTAP_DASHBOARD_PORT": str(dashboard_port),
        "RTAP_COLLECT_PORT": str(free_port()),
        "RTAP_METRICS_PORT": str(free_port()),
        "RTAP_STREAM_MASTER": "local[2]",
        # Sessions end after 5 s without events (default 30 min), so the abandoned-cart panels fill within the run.
        "RTAP_STREAM_SESSION_GAP_S": "5",
    }
    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen(
        [sys.executable, "-m", "rtap", "up", "--rate", "200"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        validate = run(
            ["validate", "--target", f"http://127.0.0.1:{dashboard_port}", "--wait-s", "240", "--flow-timeout-s", "60"],
            env,
            timeout=420,
        )
        assert validate.returncode == 0, validate.stdout + validate.stderr
        assert "✗" not in validate.stdout
        assert "✓ collector to warehouse: event " in validate.stdout  # through the collector `rtap up` runs
        status = run(["status"], env, timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "stream job" in status.stdout
        sql = run(["sql", "SELECT count() > 0 FROM rtap.events FINAL"], env, timeout=60)
        assert sql.stdout.strip() == "1", sql.stdout + sql.stderr

        # The page a data team keeps open: every panel draws the pipeline's data, and the charts move as the
        # generator keeps producing (the page polls; the job commits a batch every few seconds).
        page.goto(f"http://127.0.0.1:{dashboard_port}/#clickstream")
        # abandoned_carts fills only once a session has ended: the session gap, then the watermark (30 s) past it.
        wait_until_every_panel_has_data(page, "clickstream", timeout_s=120)
        before = events_shown(page)
        deadline = time.monotonic() + 120
        while events_shown(page) == before and time.monotonic() < deadline:
            page.wait_for_timeout(1000)
        assert events_shown(page) != before, "the live chart did not change while events kept arriving"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-live.png"), full_page=True)
    finally:
        up.send_signal(signal.SIGTERM)
        code = up.wait(timeout=180)
        log.close()
    console = (tmp_path / "up.log").read_text(errors="replace")
    log_file = tmp_path / "data" / "logs" / "rtap-up.log"
    assert code == 0, console[-3000:] + "\n--- " + str(log_file) + ":\n" + log_file.read_text(errors="replace")[-3000:]
    lines = console.splitlines()
    assert lines[0].startswith(f"log: {log_file} ")
    assert not [line for line in lines if any(noise in line for noise in NOISE)], console
    statuses = [line for line in lines if " status: " in line and "events/s" in line]
    assert statuses, console  # one every 10 s without a terminal, and the final one
    assert re.search(r"since start [\d,]+ dead letters, [\d,]+ late, [\d,]+ duplicates in [\d,]+ batches", statuses[-1])
    assert lines[-1] == f"stopped; the log is {log_file}"
    assert "INFO rtap.stream: batch 0:" in log_file.read_text()
    time.sleep(1)
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True).stdout.split()
    assert leftovers == [], "processes left running after rtap up stopped"
    stopped = run(["status"], env, timeout=60)
    assert stopped.returncode == 1
