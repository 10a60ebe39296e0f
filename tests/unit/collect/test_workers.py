"""Several collector processes on one socket (rtap.collect.workers), for real: a supervisor and its workers in their
own processes, with Kafka unreachable (every /healthz is a 503, which is all these tests need from the sink)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from rtap.collect.workers import CRASH_LOOP, QUICK_EXIT_S, _restart, _Worker
from rtap.errors import ServiceError
from rtap.runtime.ports import free_ports
from rtap.runtime.process import wait_until

# The supervisor as `rtap collect` runs it, without the topic check that needs a broker.
SUPERVISOR = (
    "import sys; from rtap.collect.workers import serve; from rtap.runtime.ports import listening_socket; "
    "from rtap.settings import Settings; "
    "serve(Settings(), listening_socket('127.0.0.1', int(sys.argv[1]), 'the collector'))"
)


def _workers(supervisor: int) -> set[int]:
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return {int(pid) for pid in children if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()}


@contextmanager
def _supervisor(tmp_path: Path, workers: int) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_ports(1, "127.0.0.1")[0]
    env = {
        **os.environ,
        "RTAP_DATA_DIR": str(tmp_path),
        "RTAP_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "RTAP_COLLECT_WORKERS": str(workers),
        "RTAP_COLLECT_ACK_TIMEOUT_S": "1",
    }
    # A file, not a pipe: librdkafka logs every failed connection, and a pipe nobody reads fills up and blocks the
    # supervisor's own writes (its "restarted" line) and the workers'.
    with (tmp_path / "stderr").open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", SUPERVISOR, str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: len(_workers(process.pid)) == workers and _answers(url), 60), "never came up"
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=5).status_code == 503
    except httpx.TransportError:
        return False


def _counted(url: str, route: str) -> float:
    text = httpx.get(url + "/metrics", timeout=5).text
    pattern = rf'^rtap_collect_requests_total\{{code="503",route="{re.escape(route)}"\}} (\S+)$'
    return sum(float(value) for value in re.findall(pattern, text, re.MULTILINE))


def test_workers_share_the_socket_the_metrics_sum_over_them_and_a_dead_one_is_replaced(tmp_path: Path) -> None:
    with _supervisor(tmp_path, workers=2) as (supervisor, url):
        before = _counted(url, "/healthz")  # the readiness probes
        for _ in range(200):  # a new connection each: the kernel hands them to either worker
            assert httpx.get(url + "/healthz", timeout=5).status_code == 503
        assert _counted(url, "/healthz") == before + 200  # whichever worker answers the scrape

        first = _workers(supervisor.pid)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        assert wait_until(lambda: len(_workers(supervisor.pid) - {victim}) == 2, 30), "the dead worker never came back"
        every = first | _workers(supervisor.pid)
        assert _answers(url)
        assert _counted(url, "/healthz") >= before + 200  # the dead worker's counts are kept
        assert httpx.get(url + "/metrics", timeout=5).text.count("process_cpu_seconds_total") == 0

        os.killpg(supervisor.pid, signal.SIGINT)  # Ctrl-C: the supervisor's group only
        supervisor.wait(timeout=30)
        stderr = (tmp_path / "stderr").read_text(errors="replace")
        assert supervisor.returncode == 0, stderr
        assert f"(pid {victim}) exited with code -9: restarted" in stderr
        assert [pid for pid in every if Path(f"/proc/{pid}").exists()] == []  # each stopped, and reaped


def _exit_with(code: int) -> None:
    sys.exit(code)


def _started(index: int, quick_exits: int, *, age_s: float = 0.0, code: int = 3) -> _Worker:
    import multiprocessing

    process = multiprocessing.get_context("spawn").Process(target=_exit_with, args=(code,))
    process.start()
    process.join()
    return _Worker(index, process, time.monotonic() - age_s, quick_exits)


def test_a_worker_that_keeps_dying_at_its_start_stops_the_supervisor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # where mark_process_dead looks
    worker = _started(0, 0)
    for _ in range(CRASH_LOOP - 1):  # quick exits are restarted until the last straw
        worker = _restart(worker, lambda index, quick: _started(index, quick))
    with pytest.raises(ServiceError, match=rf"collector worker 0 exited with code 3 {CRASH_LOOP} times in a row"):
        _restart(worker, lambda index, quick: _started(index, quick))

    # One that ran longer than QUICK_EXIT_S before it died starts a new count.
    late = _started(1, CRASH_LOOP - 1, age_s=QUICK_EXIT_S + 1)
    assert _restart(late, lambda index, quick: _started(index, quick)).quick_exits == 0
