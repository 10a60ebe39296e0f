"""The stream job's restarts: when it tries again, the line the operator reads, and the state ``rtap status`` shows.

Pure and light (no Spark, no py4j): ``rtap status`` reads :class:`JobState` from ``<data dir>/run/stream-job.json``
without importing the job, and the decisions of :class:`FailuresInARow` are unit-tested without a JVM.

A failure is a failed micro-batch or a dead Spark JVM. The job restarts from its checkpoint after each, waiting
2, 4, 8, 16 s (at most :data:`MAX_BACKOFF_S`); a committed batch since the last start makes the next failure the
first in a row again, and the ``limit``-th failure in a row ends the job with one line that says why and what to do.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

JOB_STATE_FILE = "stream-job.json"
MAX_BACKOFF_S = 30.0
# -XX:+ExitOnOutOfMemoryError (rtap.stream.spark) exits the JVM with this code.
JVM_OUT_OF_MEMORY_EXIT = 3
# Spark's own (SparkExitCode.OOM): its handler of uncaught exceptions exits with it when one of its threads, a
# task's say, dies of an OutOfMemoryError (measured: a task's Arrow buffers out of direct memory).
SPARK_OUT_OF_MEMORY_EXIT = 52


@dataclass
class JobState:
    """What ``rtap status`` shows of a running job beyond its batches: its process and its restarts.

    ``pid`` is the process that runs the job (``rtap up`` or ``rtap stream``): the file of a process that is gone
    describes a job that no longer runs.
    """

    pid: int
    started_at: str
    restarts: int = 0
    last_restart_at: str | None = None
    last_error: str | None = None

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self)))
        temporary.replace(path)

    @classmethod
    def read(cls, path: Path) -> JobState | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def running(self) -> bool:
        """Whether the process that wrote this state still exists."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # it exists, under another user
            return True
        return True


@dataclass
class FailuresInARow:
    """Failures of the job without a committed batch in between, and what the job does about the last one."""

    limit: int
    count: int = 0

    def failed(self, *, committed_since_last_start: bool) -> None:
        """Count one failure; a batch committed since the last (re)start means the job had recovered."""
        self.count = 1 if committed_since_last_start else self.count + 1

    def recovered(self) -> None:
        """A batch committed and the query stopped without a failure (a new cap): the next failure is the first."""
        self.count = 0

    @property
    def exhausted(self) -> bool:
        return self.count >= self.limit

    @property
    def backoff_s(self) -> float:
        return min(MAX_BACKOFF_S, 2.0**self.count)

    def restart_line(self, reason: str, *, smaller: bool = False) -> str:
        """The one line the console shows for a restart (``reason``: :func:`describe_jvm_exit` or a failed batch;
        ``smaller``: the batch is planned again smaller, and the limit waits until it cannot be)."""
        limit = "the batch is planned again smaller" if smaller else f"the job stops at {self.limit}"
        return (
            f"{reason}: restarting the stream job from its checkpoint in {self.backoff_s:.0f} s "
            f"(failure {self.count} in a row; {limit})"
        )

    def give_up_line(self, reason: str) -> str:
        """The message the job ends with when :attr:`exhausted`: why, and what to do."""
        why = f"stream job failed {self.count} times in a row without committing a batch; last: {reason}"
        return why + _advice(reason)


def describe_jvm_exit(code: int | None) -> str:
    """Why Spark's JVM is gone, from its exit status (negative: the signal that killed it; None: still there)."""
    if code is None:
        return "Spark's JVM stopped answering"
    if code in (JVM_OUT_OF_MEMORY_EXIT, SPARK_OUT_OF_MEMORY_EXIT):
        return f"Spark's JVM ran out of memory (java.lang.OutOfMemoryError, exit code {code})"
    if code < 0:
        return f"Spark's JVM was killed by signal {-code}"
    return f"Spark's JVM exited with code {code}"


def out_of_memory(reason: str) -> bool:
    """Whether a failure's text (:func:`describe_jvm_exit`'s, or a failed batch's error) says memory ran out: the
    JVM's heap, its direct memory (netty's OutOfDirectMemoryError) or Arrow's allocator (OutOfMemoryException)."""
    return "out of memory" in reason or "OutOfMemory" in reason or "OutOfDirectMemory" in reason


def _advice(reason: str) -> str:
    if out_of_memory(reason):
        return "; lower RTAP_STREAM_MAX_BATCH_BYTES or _RECORDS, or raise RTAP_STREAM_DRIVER_MEMORY, then start again"
    if "killed by signal" in reason:
        return (
            "; find what kills it (the kernel's OOM killer: `dmesg`; a container's memory limit), then start again: "
            "the job resumes from its checkpoint"
        )
    return "; see the log in the data directory, fix the cause, then start again: the job resumes from its checkpoint"
