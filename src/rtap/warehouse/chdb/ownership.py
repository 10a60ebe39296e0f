"""Who owns a chDB data directory: an exclusive ``flock`` on a file in it, plus the owner's pid.

chDB (like clickhouse-local) lets one process at a time open a directory. rtap makes that explicit:
the owner holds the lock for as long as it runs and may serve read-only queries to other processes
over a socket (:mod:`rtap.warehouse.chdb.channel`). The kernel drops the lock when the owner dies, so a
stale lock file never blocks a takeover: the pid written in it is only for messages.

``flock`` rather than ``lockf``/POSIX record locks: those are per process, so a second open in the
same process would silently "succeed" and closing any descriptor would release the lock.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

LOCK_FILE = "rtap-owner.lock"


@dataclass
class Ownership:
    """A held lock on a data directory; :meth:`release` gives it up."""

    directory: Path
    fd: int

    def release(self) -> None:
        if self.fd < 0:
            return
        # Closing the descriptor drops the flock; the file stays so that takeover needs no cleanup.
        os.close(self.fd)
        self.fd = -1


def try_acquire(directory: Path) -> Ownership | None:
    """Take the lock and record this pid, or return None when a live process holds it."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return Ownership(directory, fd)


def owner_pid(directory: Path) -> int | None:
    """The pid recorded by the current (or last) owner, if readable."""
    try:
        text = (directory / LOCK_FILE).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
