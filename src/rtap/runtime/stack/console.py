"""What ``rtap up`` shows the operator, and where everything else goes (issue #16).

The console gets the start-up lines, the status line (:mod:`rtap.runtime.stack.statusline`) and every warning or error
an rtap logger reports. Everything else goes to one log file, ``<data dir>/logs/rtap-up.log``, whose path is
printed once: Spark's JVM (log4j's start-up banner, NativeCodeLoader, "Current batch is falling behind"...),
librdkafka's ``%4|...|GETPID|...`` lines, and Python's INFO records such as the job's line per micro-batch
(logger ``rtap.stream``). ``rtap up -v`` shows INFO records on the console too.

Why file descriptors and not only logging: the JVM that pyspark launches and librdkafka's C code write to
descriptors 1 and 2 directly, past ``sys.stdout`` and past Python's logging, and neither is configured from here
(the JVM also prints JDK notices before log4j starts). So while ``rtap up`` runs, descriptors 1 and 2 are a pipe
whose lines a thread writes to the log file, and the console writes to a copy of the original stdout. The log
rotates (rtap.runtime.process.LOG_MAX_BYTES x LOG_BACKUPS) so that a week of uptime does not fill the disk.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import select
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rtap.console import console as make_console
from rtap.runtime.process import MAX_LINE_BYTES, fresh_log

if TYPE_CHECKING:
    from rich.console import Console

    from rtap.settings import Settings

LOG_FILE = "rtap-up.log"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The logger that carries what was written to descriptors 1 and 2 (the JVM, librdkafka, stray prints).
OUTPUT_LOGGER = "rtap.output"
# Libraries whose INFO is about their own machinery (py4j's gateway, the cluster profile's HTTP polls).
QUIET_LOGGERS = ("py4j", "httpx")
# Loggers kept off the console at every level: what was written to descriptors 1 and 2 (the JVM, librdkafka,
# stray prints), and py4j, whose errors repeat a failed foreachBatch that the job itself reports (and that a
# stop interrupts by design).
FILE_ONLY_LOGGERS = (OUTPUT_LOGGER, "py4j")
# py4j also logs through the root logger ("Exception while sending command.", with a traceback, each time Spark's
# JVM dies): the job's own line says what happened, so these stay in the file like the rest of py4j's.
FILE_ONLY_PACKAGES = (f"{os.sep}py4j{os.sep}",)
_STYLES = {logging.WARNING: "yellow", logging.ERROR: "bold red", logging.CRITICAL: "bold red"}
_POLL_S = 0.2


class OperatorConsole:
    """The console of ``rtap up``: start-up steps, plain lines, and whether it is a terminal."""

    def __init__(self, console: Console) -> None:
        self.rich = console

    @property
    def terminal(self) -> bool:
        return self.rich.is_terminal

    def done(self, text: str) -> None:
        """A step that worked: ``✓ text`` (the check green on a terminal)."""
        from rich.text import Text

        self.rich.print(Text.assemble(("✓ ", "green"), text))

    def line(self, text: str = "") -> None:
        from rich.text import Text

        self.rich.print(Text(text))


class ConsoleLogHandler(logging.Handler):
    """Log records for the operator: one line each on the console, above the status line if one is shown.

    A traceback stays in the log file; the console line says so.
    """

    def __init__(self, out: OperatorConsole, level: int) -> None:
        super().__init__(level)
        self._out = out
        self.addFilter(self._for_the_operator)

    @staticmethod
    def _for_the_operator(record: logging.LogRecord) -> bool:
        if any(package in record.pathname for package in FILE_ONLY_PACKAGES):
            return False
        return not any(record.name == name or record.name.startswith(name + ".") for name in FILE_ONLY_LOGGERS)

    def emit(self, record: logging.LogRecord) -> None:
        from rich.text import Text

        try:
            when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
            message = record.getMessage()
            if record.exc_info:
                message += " (traceback in the log file)"
            style = _STYLES.get(record.levelno, "")
            self._out.rich.print(Text(f"{when} {record.levelname} {record.name}: {message}", style=style))
        except Exception:  # noqa: BLE001 - logging's contract: a failing handler reports itself, never raises
            self.handleError(record)


class OutputPump:
    """Descriptors 1 and 2 as a pipe; a thread logs each line written to it as one :data:`OUTPUT_LOGGER` record."""

    def __init__(self) -> None:
        self._log = logging.getLogger(OUTPUT_LOGGER)
        self._read, write = os.pipe()
        self._saved = (os.dup(1), os.dup(2))
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os.dup2(write, 1)
        os.dup2(write, 2)
        os.close(write)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtap-output-pump", daemon=True)
        self._thread.start()

    @property
    def original_stdout(self) -> int:
        """The descriptor stdout was before the redirection (the terminal, or the pipe of whoever started us)."""
        return self._saved[0]

    def _run(self) -> None:
        pending = b""
        # poll, not select: select() refuses a descriptor numbered 1024 or more, and chDB in this process keeps
        # three open per thread of its pools.
        poller = select.poll()
        poller.register(self._read, select.POLLIN)
        while True:
            stopping = self._stop.is_set()
            ready = poller.poll(0 if stopping else _POLL_S * 1000)
            if not ready:
                if stopping:
                    break
                continue
            chunk = os.read(self._read, 65536)
            if not chunk:  # every writer closed its end
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                self._emit(line)
            while len(pending) > MAX_LINE_BYTES:  # no newline yet: the pending piece stays bounded
                self._emit(pending[:MAX_LINE_BYTES])
                pending = pending[MAX_LINE_BYTES:]
            if stopping:  # one read after the stop, not an endless drain of a child that keeps writing
                break
        self._emit(pending)

    def _emit(self, line: bytes) -> None:
        for start in range(0, len(line), MAX_LINE_BYTES):
            text = line[start : start + MAX_LINE_BYTES].decode("utf-8", errors="replace").rstrip("\r")
            if text.strip():
                self._log.info("%s", text)

    def close(self, log_path: Path) -> None:
        """Stop the pump. From here on Python writes to the original stdout and stderr, native code to the log.

        Kafka clients the job did not close keep retrying the stopped broker until the process exits, and
        librdkafka reports each retry on descriptor 2: so descriptors 1 and 2 point at the log file, while
        ``sys.stdout`` and ``sys.stderr`` (the final error line, a traceback) are the original ones again.
        Child processes (Spark's JVM) keep their end of the pipe: a late write of theirs fails with EPIPE, which
        is better than blocking on a pipe nobody reads.
        """
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        sys.stdout = open(self._saved[0], "w", encoding="utf-8", errors="backslashreplace", buffering=1)  # noqa: SIM115
        sys.stderr = open(self._saved[1], "w", encoding="utf-8", errors="backslashreplace", buffering=1)  # noqa: SIM115
        self._stop.set()
        self._thread.join(timeout=5)
        os.close(self._read)


@dataclass(frozen=True)
class OperatorOutput:
    console: OperatorConsole
    log_path: Path


def _file_handler(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    return fresh_log(path, LOG_FORMAT)


@contextlib.contextmanager
def operator_output(settings: Settings, *, verbose: bool) -> Iterator[OperatorOutput]:
    """Route ``rtap up``'s output as the module docstring says, for the duration of the block."""
    log_path = settings.paths.logs / LOG_FILE
    root = logging.getLogger()
    previous = (root.level, list(root.handlers))
    file_handler = _file_handler(log_path)
    pump = OutputPump()
    stream = os.fdopen(os.dup(pump.original_stdout), "w", encoding="utf-8", errors="replace", buffering=1)
    out = OperatorConsole(make_console(file=stream))
    console_handler = ConsoleLogHandler(out, logging.INFO if verbose else logging.WARNING)
    for handler in previous[1]:
        root.removeHandler(handler)
    root.addHandler(file_handler)
    root.addHandler(console_handler)
    root.setLevel(settings.log_level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger(OUTPUT_LOGGER).setLevel(logging.INFO)  # whatever RTAP_LOG_LEVEL: lost otherwise
    try:
        yield OperatorOutput(out, log_path)
    finally:
        pump.close(log_path)
        for handler in (console_handler, file_handler):
            root.removeHandler(handler)
            handler.close()
        stream.close()
        root.setLevel(previous[0])
        for handler in previous[1]:
            root.addHandler(handler)
