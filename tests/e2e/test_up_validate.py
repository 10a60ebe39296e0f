"""`rtap up` as a user runs it: the whole local stack in one process, checked by `rtap validate` and `rtap status`,
then stopped with SIGTERM, leaving nothing running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.integration.conftest import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def run(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rtap", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_up_serves_live_data_that_validate_and_status_accept(tmp_path: Path) -> None:
    kafka_port, controller_port, dashboard_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "RTAP_DATA_DIR": str(tmp_path / "data"),
        "RTAP_JARS_DIR": str(REPO_ROOT / "jars" / "lib"),
        "RTAP_KAFKA_PORT": str(kafka_port),
        "RTAP_KAFKA_CONTROLLER_PORT": str(controller_port),
        "RTAP_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_port}",
        "RTAP_DASHBOARD_PORT": str(dashboard_port),
        "RTAP_STREAM_MASTER": "local[2]",
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
        status = run(["status"], env, timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "stream job" in status.stdout
        sql = run(["sql", "SELECT count() > 0 FROM rtap.events FINAL"], env, timeout=60)
        assert sql.stdout.strip() == "1", sql.stdout + sql.stderr
    finally:
        up.send_signal(signal.SIGTERM)
        code = up.wait(timeout=180)
        log.close()
    assert code == 0, (tmp_path / "up.log").read_text(errors="replace")[-3000:]
    time.sleep(1)
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True).stdout.split()
    assert leftovers == [], "processes left running after rtap up stopped"
    stopped = run(["status"], env, timeout=60)
    assert stopped.returncode == 1
