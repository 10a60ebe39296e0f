"""Supervision of the long-lived child processes rtap starts (the Kafka broker, Spark's master and workers).

Each daemon runs in a session (process group) of its own, so stopping it, or cleaning up after a failed start,
signals the whole group and leaves nothing behind; its pid is its group id. Attached daemons also die with
this process: the kernel sends them SIGTERM when the thread that started them ends (``PR_SET_PDEATHSIG``,
Linux). A daemon is found again through its pid file, and a pid counts as the daemon's only if its command
line carries the daemon's markers (pid files outlive reboots; pids are reused).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

_PR_SET_PDEATHSIG = 1
_POLL_S = 0.1


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the kernel SIGTERM the child when this process dies (Linux only).

    libc is resolved here, in the parent: the function that runs between fork and exec must not import
    or allocate. If the parent died before the call took effect, the child exits at once.
    """
    return _dying_with(os.getpid())


def die_with(parent: int) -> None:
    """Called in a child that is already running (a multiprocessing worker): the kernel SIGTERMs it when
    ``parent`` dies, and it exits at once if ``parent`` is gone already (Linux only)."""
    hook = _dying_with(parent)
    if hook is not None:
        hook()


def _dying_with(parent: int) -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def tie() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os._exit(1)

    return tie


def spawn(
    command: list[str], *, log: Path, cwd: Path, attached: bool, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a daemon in its own session, its output appended to ``log``; the previous run's log is kept
    as ``<log>.1`` for a post-mortem, so two runs bound the total."""
    if log.exists():
        log.replace(log.with_name(log.name + ".1"))
    with log.open("ab") as output:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent() if attached else None,
        )


def runs_with(pid: int, *markers: str) -> bool:
    """Whether ``pid`` is alive and its command line has every one of ``markers`` as an argument.

    Without procfs (macOS) a live pid is the best there is. A zombie has an empty command line: it has
    exited, its parent just has not reaped it yet.
    """
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.parent.exists():
        return True
    try:
        args = cmdline.read_bytes().split(b"\0")
    except OSError:  # it exited between the two checks
        return False
    return all(marker.encode() in args for marker in markers)


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def signal_group(pid: int, sig: signal.Signals) -> None:
    """``sig`` to the daemon's whole process group (it leads its session: its pid is the group id)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def wait_until(done: Callable[[], bool], timeout_s: float) -> bool:
    """Poll ``done`` until it holds or ``timeout_s`` passes; whether it held."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL_S)
    return True


class Supervised(ABC):
    """A set of daemons that ``with`` starts and stops (their own options have defaults)."""

    @abstractmethod
    def start(self, *args: Any, **kwargs: Any) -> object:
        """Start the daemons; after a failure nothing started is left running."""

    @abstractmethod
    def stop(self, *args: Any, **kwargs: Any) -> object:
        """Stop the daemons (SIGTERM, then SIGKILL after a timeout)."""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
