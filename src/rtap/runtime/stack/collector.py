"""The collector as a child of ``rtap up``: ``rtap collect`` in a process of its own, supervised like the broker.

A process of its own, not a thread of ``rtap up``'s: the collector's event loop must not share an interpreter
lock with Spark's driver, the generator and the dashboard. It starts after the topics exist, is ready once its
``/healthz`` says the Kafka sink is healthy, stops with the stack (SIGTERM: the requests in flight finish and
the producer flushes), and dies with it (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from rtap.errors import ServiceError
from rtap.runtime.ports import free_ports
from rtap.runtime.process import Supervised, signal_group, spawn
from rtap.settings import Settings, child_environment

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
LOG_NAME = "collector.log"


class CollectorDaemon(Supervised):
    """``rtap collect`` on ``settings.collect.host:port`` (a free port when it is 0), logging to
    ``DATA_DIR/logs/collector.log``; ``env`` adds to the environment it gets."""

    def __init__(self, settings: Settings, env: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        collect = settings.collect
        self.host = collect.host
        self.port = collect.port or free_ports(1, collect.host)[0]
        self.log = settings.paths.logs / LOG_NAME
        # Every collector setting as this process has it (from its .env too, which the child would not read).
        own = {
            f"RTAP_COLLECT_{name.upper()}": value if isinstance(value, str) else json.dumps(value)
            for name, value in collect.model_dump(mode="json").items()
        }
        self._env = {**child_environment(settings), **own, "RTAP_COLLECT_PORT": str(self.port), **(env or {})}
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def pid(self) -> int | None:
        """The collector's pid while it runs."""
        if self._process is not None and self._process.poll() is None:
            return self._process.pid
        return None

    def start(self, timeout_s: float = START_TIMEOUT_S, *, wait: bool = True) -> int:
        """Start it and (unless ``wait`` is False: then :meth:`wait_ready`) wait until its Kafka sink is healthy;
        its pid. On a failure nothing is left running."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "rtap", "collect"]
        # In this process's working directory: the child reads the same .env (Kafka's credentials, say) beneath
        # the variables set here.
        self._process = spawn(command, log=self.log, cwd=Path.cwd(), attached=True, env=self._env)
        if wait:
            self.wait_ready(timeout_s)
        return self._process.pid

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Until ``/healthz`` answers 200; on a failure the collector is stopped and the error says why."""
        assert self._process is not None, "wait_ready() before start()"
        try:
            self._wait_healthy(self._process, timeout_s)
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self, process: subprocess.Popen[bytes], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServiceError(f"the collector exited with {process.returncode}: {self.log_tail()}")
            try:
                answer = httpx.get(f"{self.url}/healthz", timeout=2.0)
            except httpx.HTTPError as exc:
                last = str(exc) or type(exc).__name__
            else:
                if answer.status_code == 200:
                    return
                last = answer.text
            time.sleep(0.2)
        raise ServiceError(f"the collector on {self.url} was not healthy within {timeout_s:.0f} s: {last}")

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM (requests in flight finish, the producer flushes), SIGKILL after ``timeout_s``; the exit code."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                signal_group(process.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=10)
        return process.returncode

    def log_tail(self, lines: int = 20) -> str:
        if not self.log.exists():
            return ""
        return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-lines:])
