"""`rtap up` in a real terminal (tmux): the start-up steps, one live status line, none of Spark's or librdkafka's
output; commands stay whole in a narrow terminal; Ctrl-C stops everything. Screenshots in test-artifacts/."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.support.browser import ARTIFACTS
from tests.support.paths import REPO_ROOT, free_port
from tests.support.terminal import NOISE, TmuxSession, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

SQL = (
    'rtap sql "SELECT window_start, page_url, views, unique_users FROM rtap.page_views_1m FINAL '
    'ORDER BY window_start DESC LIMIT 10"'
)


def status_lines(screen: str) -> list[str]:
    return [line for line in screen.splitlines() if line.startswith("● ")]


def past_start_up(screen: str) -> bool:
    """The status line shows the fifth batch or a later one: the start-up catch-up is behind."""
    for line in status_lines(screen):
        match = re.search(r"batch ([\d,]+) \d+ s ago", line)
        if match and int(match.group(1).replace(",", "")) >= 5:
            return True
    return False


def cut_to_40(screen: str) -> bool:
    """The newest status line fits 40 columns, cut with an ellipsis."""
    lines = status_lines(screen)
    return bool(lines) and len(lines[-1]) <= 40 and lines[-1].endswith("…")


def test_up_in_a_terminal(tmp_path: Path, page: Page) -> None:
    kafka_port, controller_port, dashboard_port = free_port(), free_port(), free_port()
    data_dir = tmp_path / "data"
    env = {
        "RTAP_DATA_DIR": str(data_dir),
        "RTAP_JARS_DIR": str(REPO_ROOT / "jars" / "lib"),
        "RTAP_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_port}",
        "RTAP_KAFKA_CONTROLLER_PORT": str(controller_port),
        "RTAP_DASHBOARD_PORT": str(dashboard_port),
        "RTAP_COLLECT_PORT": str(free_port()),
        "RTAP_STREAM_MASTER": "local[2]",
    }
    terminal = TmuxSession(
        [sys.executable, "-m", "rtap", "up", "--rate", "300"], env, columns=160, rows=40, cwd=tmp_path
    )
    try:
        shown = terminal.wait_for(past_start_up, timeout_s=300, what="a status line at batch 5 or later")
        ARTIFACTS.mkdir(exist_ok=True)
        screenshot(page, terminal.screen(colours=True), 160, ARTIFACTS / "up-terminal.png")

        lines = shown.splitlines()
        log = data_dir / "logs" / "rtap-up.log"
        assert lines[0] == f"log: {log} (Spark, Kafka clients, one line per micro-batch)"
        for step in ("✓ ClickHouse (chdb) ready", f"✓ Kafka broker on 127.0.0.1:{kafka_port}", "✓ Dashboard: http"):
            assert any(line.startswith(step) for line in lines), step
        assert f"  SQL           {SQL}" in lines
        assert not [line for line in lines if any(noise in line for noise in NOISE)], shown
        (status,) = status_lines(shown)  # one live line, redrawn in place
        for figure in ("events/s", "lag ", " records", "freshness ", "dead letters ", "late ", "duplicates "):
            assert figure in status, status
        text = log.read_text()
        assert "rtap.output:" in text  # the JVM's and librdkafka's lines
        assert "INFO rtap.stream: batch 0:" in text

        # A narrow terminal folds long lines for display only: copying them (tmux -J) gives each line back whole,
        # and the status line is cut to the width instead of wrapping.
        terminal.resize(40)
        # The line is redrawn at the new width at its next refresh, which a slow machine may take a while to reach.
        narrowed = terminal.wait_for(cut_to_40, timeout_s=30, what="the status line cut to 40 columns")
        joined = terminal.screen(joined=True, history=200).splitlines()
        assert f"  SQL           {SQL}" in joined
        assert f"✓ Spark stream job running (local[2]), checkpoint in {data_dir}/checkpoints/stream" in joined
        narrow = status_lines(narrowed)[-1]
        assert len(narrow) <= 40
        assert narrow.endswith("…")
        screenshot(page, terminal.screen(colours=True), 40, ARTIFACTS / "up-terminal-40-columns.png")

        terminal.resize(160)
        terminal.keys("C-c")
        final = terminal.wait_for(lambda screen: "stopped; the log is" in screen, timeout_s=180, what="the stop")
        assert not [line for line in final.splitlines() if any(noise in line for noise in NOISE)], final
    finally:
        terminal.close()
