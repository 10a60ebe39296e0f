"""Supervision of the long-lived child processes rtap starts (the Kafka broker, Spark's master and workers).

Each daemon runs in a session (process group) of its own, so stopping it, or cleaning up after a failed start,
signals the whole group and leaves nothing behind; its pid is its group id. Attached daemons also die with
this process: the kernel sends them SIGTERM when the thread that started them ends (``PR_SET_PDEATHSIG``,
Linux). A daemon is found again through its pid file, and a pid counts as the daemon's only if its command
line carries the daemon's markers (pid files outlive reboots; pids are reused).

An attached daemon's output is bounded like ``rtap up``'s own log (:data:`LOG_MAX_BYTES` x :data:`LOG_BACKUPS`):
what it writes (the collector logs a line per refused request, which anyone who reaches it can cause) goes
through a pipe that a thread drains into a rotating file (:class:`_LogPump`). A detached daemon outlives this
process, so nothing here could drain a pipe of its: it appends to its file.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import logging.handlers
import os
import select
import signal
import subprocess
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

_PR_SET_PDEATHSIG = 1
_POLL_S = 0.1
# Every log rtap writes during a run rotates at this size and keeps this many old files (rtap-up.log, and each
# attached daemon's): a week of uptime, or a flood of refused requests, must not fill the disk.
LOG_MAX_BYTES = 20 * 2**20
LOG_BACKUPS = 3
# A line longer than this is cut into pieces: a pump's buffer must not grow with its input (also rtap-up.log's).
MAX_LINE_BYTES = 64 * 1024
# Output read but not yet written while the disk is slow; beyond it the newest chunks are dropped (and counted)
# rather than the reading stalled, which would stall the daemon on a full pipe.
_BACKLOG_BYTES = 4 * 2**20
# How long stopping waits for the pump to write what the daemon wrote last (a log tail after a failed start).
_DRAIN_TIMEOUT_S = 5.0
# How long after the daemon's exit the pump still reads a pipe that a process it started keeps writing to.
_AFTER_EXIT_S = 1.0


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
    command: list[str],
    *,
    log: Path,
    cwd: Path,
    attached: bool,
    env: dict[str, str] | None = None,
    max_bytes: int = LOG_MAX_BYTES,
    backups: int = LOG_BACKUPS,
) -> subprocess.Popen[bytes]:
    """Start a daemon in its own session, its output (stdout and stderr) in ``log``.

    Attached: through a pipe into ``log`` rotated at ``max_bytes`` with ``backups`` old files; the previous
    run's log is ``<log>.1``. Detached: appended to ``log``, the previous run's kept as ``<log>.1``.
    """
    if not attached:
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
            )
    handler = fresh_log(log, "%(message)s", max_bytes=max_bytes, backups=backups, kind=_RotatingFile, errors="replace")
    try:
        process = _PumpedPopen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
    except BaseException:
        handler.close()
        raise
    assert process.stdout is not None
    process.pump = _LogPump(process, process.stdout, handler)
    return process


class _RotatingFile(logging.handlers.RotatingFileHandler):
    """A daemon's log: rotated like rtap-up.log, and silent when a write fails (a full disk loses those lines;
    a traceback per line on stderr would only add to the flood)."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def fresh_log(
    log: Path,
    log_format: str,
    *,
    max_bytes: int = LOG_MAX_BYTES,
    backups: int = LOG_BACKUPS,
    kind: type[logging.handlers.RotatingFileHandler] = logging.handlers.RotatingFileHandler,
    errors: str | None = None,
) -> logging.handlers.RotatingFileHandler:
    """A rotating log for one run: every run starts a fresh file, the previous one is ``<log>.1``."""
    handler = kind(log, maxBytes=max_bytes, backupCount=backups, encoding="utf-8", errors=errors)
    if log.stat().st_size:
        handler.doRollover()
    handler.setFormatter(logging.Formatter(log_format))
    return handler


class _PumpedPopen(subprocess.Popen[bytes]):
    """A daemon whose output a :class:`_LogPump` writes: once it has exited, :meth:`poll` and :meth:`wait` return
    only after its last output is in the log (or :data:`_DRAIN_TIMEOUT_S` passed), so a log tail read then is
    complete."""

    pump: _LogPump | None = None

    def poll(self) -> int | None:
        code = super().poll()
        if code is not None and self.pump is not None:
            self.pump.join(_DRAIN_TIMEOUT_S)
        return code

    def wait(self, timeout: float | None = None) -> int:
        code = super().wait(timeout)
        if self.pump is not None:
            self.pump.join(_DRAIN_TIMEOUT_S)
        return code


class _LogPump:
    """Two threads between a daemon's pipe and its rotating log file.

    The reader only reads: it never waits for the disk, so the daemon never blocks on a full pipe; what it has
    read waits in a backlog of at most :data:`_BACKLOG_BYTES` (beyond that, chunks are dropped and the log says
    how many bytes). The writer writes the backlog's complete lines to the file; a write that fails (a full disk)
    loses those lines, never the reading. Both end when the daemon has exited and its output is read: at the end
    of the pipe, or (a process it started still holding the pipe) once the pipe is quiet, at most
    :data:`_AFTER_EXIT_S` after the exit.
    """

    def __init__(self, process: subprocess.Popen[bytes], pipe: IO[bytes], handler: logging.Handler) -> None:
        self._process = process
        self._pipe = pipe
        self._handler = handler
        self._backlog: deque[bytes] = deque()
        self._backlog_bytes = 0
        self._dropped = 0
        self._done = False
        self._ready = threading.Condition()
        name = f"rtap-log-pump-{process.pid}"
        self._reader = threading.Thread(target=self._read, name=f"{name}-read", daemon=True)
        self._writer = threading.Thread(target=self._write, name=f"{name}-write", daemon=True)
        self._writer.start()
        self._reader.start()

    def join(self, timeout_s: float) -> None:
        """Until everything the daemon wrote is in the file (at most ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        for thread in (self._reader, self._writer):
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    def _read(self) -> None:
        fd = self._pipe.fileno()
        # poll, not select: select() refuses a descriptor numbered 1024 or more.
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        exited_at: float | None = None
        next_check = 0.0
        try:
            while True:
                now = time.monotonic()
                if exited_at is None and now >= next_check:
                    next_check = now + _POLL_S
                    if subprocess.Popen.poll(self._process) is not None:  # not the override: it joins this thread
                        exited_at = now
                if exited_at is not None and now - exited_at > _AFTER_EXIT_S:
                    break  # a process the daemon started still writes to the pipe: not this log's any more
                if not poller.poll(_POLL_S * 1000):
                    if exited_at is not None:  # gone, and nothing more to read
                        break
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:  # every writer closed its end
                    break
                with self._ready:
                    if self._backlog_bytes + len(chunk) > _BACKLOG_BYTES:
                        self._dropped += len(chunk)
                    else:
                        self._backlog.append(chunk)
                        self._backlog_bytes += len(chunk)
                    self._ready.notify()
        except OSError:
            pass
        finally:
            with self._ready:
                self._done = True
                self._ready.notify()
            with contextlib.suppress(OSError):
                self._pipe.close()  # a process still holding the pipe gets EPIPE, not a pipe nobody reads

    def _write(self) -> None:
        pending = b""
        try:
            while True:
                with self._ready:
                    while not self._backlog and not self._done:
                        self._ready.wait()
                    chunks, self._backlog = list(self._backlog), deque()
                    self._backlog_bytes = 0
                    dropped, self._dropped = self._dropped, 0
                    done = self._done and not chunks
                if done:
                    break
                *lines, pending = (pending + b"".join(chunks)).split(b"\n")
                if len(pending) >= MAX_LINE_BYTES:  # no newline yet: the pending piece stays bounded
                    lines.append(pending)
                    pending = b""
                if dropped:
                    lines.append(f"[rtap: {dropped} bytes of this output were dropped: the log fell behind]".encode())
                self._emit(lines)
            if pending:
                self._emit([pending])
        finally:
            self._handler.close()

    def _emit(self, lines: list[bytes]) -> None:
        """The lines as records of at most :data:`MAX_LINE_BYTES` each: the handler decides on a rollover before
        each, so the file exceeds its size by at most one record."""
        block: list[bytes] = []
        size = 0
        for line in lines:
            for start in range(0, max(len(line), 1), MAX_LINE_BYTES - 1):  # a longer line is cut into pieces
                piece = line[start : start + MAX_LINE_BYTES - 1]
                if block and size + len(piece) + 1 > MAX_LINE_BYTES:
                    self._record(block)
                    block, size = [], 0
                block.append(piece.rstrip(b"\r"))
                size += len(piece) + 1
        if block:
            self._record(block)

    def _record(self, block: list[bytes]) -> None:
        text = b"\n".join(block).decode("utf-8", errors="replace")
        self._handler.emit(logging.makeLogRecord({"msg": text, "levelno": logging.INFO}))


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
