"""An attached daemon's log is bounded like rtap-up.log: rotated, the newest lines kept, and draining it never
stalls the daemon (real child processes)."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rtap.runtime import process
from rtap.runtime.process import signal_group, spawn
from tests.support.waiting import settled

LINES = 40_000
LINE = "line {:06d} " + "x" * 88  # 100 bytes with its newline
WRITE_LINES = f"import sys\nfor i in range({LINES}): sys.stdout.write({LINE!r}.format(i) + '\\n')\n"


def _logs(log: Path) -> list[Path]:
    return sorted(log.parent.glob(log.name + "*"))


def _pump_threads(pid: int) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith(f"rtap-log-pump-{pid}")]


def test_the_log_of_an_attached_daemon_rotates_and_keeps_the_newest_lines(tmp_path: Path) -> None:
    log = tmp_path / "collector.log"
    max_bytes = 256 * 1024  # the child writes 4 MB: sixteen times that

    child = spawn(
        [sys.executable, "-c", WRITE_LINES], log=log, cwd=tmp_path, attached=True, max_bytes=max_bytes, backups=2
    )
    assert child.wait(timeout=60) == 0
    # wait() gives the pump _DRAIN_TIMEOUT_S to write the last lines; 4 MB line by line can take longer on a
    # loaded machine (a full unit run beside other tests once missed the newest lines)
    settled(lambda: _pump_threads(child.pid), lambda threads: not threads, 60, every_s=0.1)

    assert [path.name for path in _logs(log)] == ["collector.log", "collector.log.1", "collector.log.2"]
    assert all(path.stat().st_size <= max_bytes for path in _logs(log))
    oldest_first = (log.with_name(log.name + ".2"), log.with_name(log.name + ".1"), log)
    kept = [line for path in oldest_first for line in path.read_text().splitlines()]
    # The newest lines, in order and whole, up to the very last one; the oldest are gone.
    assert kept == [LINE.format(i) for i in range(LINES - len(kept), LINES)]
    assert len(kept) * 100 > max_bytes * 2


def test_the_previous_runs_log_is_kept_as_log_1(tmp_path: Path) -> None:
    log = tmp_path / "kafka.log"
    log.write_text("the previous run\n")

    child = spawn([sys.executable, "-c", "print('this run')"], log=log, cwd=tmp_path, attached=True)
    assert child.wait(timeout=30) == 0

    assert log.read_text() == "this run\n"
    assert log.with_name("kafka.log.1").read_text() == "the previous run\n"


def test_a_stalled_log_write_does_not_stall_the_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk stops answering: the daemon still writes 8 MB (far more than a pipe holds) and exits; what the
    backlog cannot hold is dropped and the log says how much."""
    release = threading.Event()
    emit = process._RotatingFile.emit

    def stalled(handler: process._RotatingFile, record: logging.LogRecord) -> None:
        release.wait(60)
        emit(handler, record)

    monkeypatch.setattr(process._RotatingFile, "emit", stalled)
    log = tmp_path / "collector.log"
    child = spawn(
        [sys.executable, "-c", "import sys\nfor _ in range(8192): sys.stdout.write('y' * 1023 + '\\n')\n"],
        log=log,
        cwd=tmp_path,
        attached=True,
    )
    try:
        deadline = time.monotonic() + 30
        while subprocess.Popen.poll(child) is None and time.monotonic() < deadline:  # not the pump's join
            time.sleep(0.05)
        assert child.returncode == 0, "the daemon blocked on its output while the log could not be written"
    finally:
        release.set()
    assert child.wait(timeout=30) == 0

    text = log.read_text()
    assert "bytes of this output were dropped: the log fell behind]" in text
    assert text.count("y" * 1023) < 8192


@pytest.mark.parametrize("grandchild", [["sleep", "60"], ["yes"]])
def test_the_pump_ends_with_the_daemon_even_if_its_child_holds_the_pipe(grandchild: list[str], tmp_path: Path) -> None:
    """A process the daemon started keeps the pipe open, quiet or writing without pause: the pump still ends
    (and the log stays bounded) once the daemon is gone."""
    log = tmp_path / "spark-worker.log"
    script = f"import subprocess\nsubprocess.Popen({grandchild!r})\nprint('started', flush=True)\n"

    child = spawn([sys.executable, "-c", script], log=log, cwd=tmp_path, attached=True, max_bytes=256 * 1024, backups=1)
    try:
        assert child.wait(timeout=30) == 0
        assert not settled(lambda: _pump_threads(child.pid), lambda threads: not threads, 10, every_s=0.05)
        if grandchild[0] == "sleep":
            assert log.read_text() == "started\n"
        assert all(path.stat().st_size <= 256 * 1024 for path in _logs(log))
    finally:
        signal_group(child.pid, signal.SIGKILL)  # the grandchild, in the daemon's process group
