"""chDB's background merges run below the stream job's own work (RTAP_CLICKHOUSE_MERGE_NICE).

chDB runs MergeTree's background merges on threads of the process that owns the data directory (the job's, under
`rtap up`), named ``MergeMutate``. At 10,000 events/s they took 0.19 of a core (the running stack's CPU time per
thread), on the same two cores as the micro-batch that waits for its inserts and Spark's tasks: a merge that runs
during a batch stretches it. Merges do not hold up an insert, so they can wait for a moment the batch leaves
the cores free. At a higher nice value they still run whenever the cores have time, and a backlog of parts is
bounded by ClickHouse itself (it slows inserts once a partition has too many parts).

Measured (2026-12-04, ``bench/README.md``): one stack at 10,000 events/s, 90-s steps alternating the merge threads'
nice value on the running process: freshness p50 0.61-0.85 s and p99 1.12-1.40 s (medians 0.67 and 1.22 s over six
steps) at nice 10 or 19, against p50 0.73-0.79 s and p99 1.26-1.65 s (medians 0.75 and 1.36 s over six) at 0. Off by
default all the same: on a machine saturated for several minutes (bench_admission) the job slowed from round to round
at nice 10 and not at 0, one run each; a long saturated run must show merges keep up before it is turned on.

The threads are found by name in ``/proc/self/task`` (Linux; elsewhere nothing changes) every few seconds, since
the pool may start them after the engine opens. A thread's nice value only goes up: one the process already runs
at a higher value (``nice -n 19 rtap up``) keeps it, and raising it needs no privilege.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)

MERGE_THREAD_NAME = "MergeMutate"
TASKS = Path("/proc/self/task")
CHECK_INTERVAL_S = 5.0


def merge_threads(tasks: Path = TASKS) -> list[int]:
    """The ids of this process's threads that run chDB's background merges."""
    found = []
    for task in tasks.iterdir() if tasks.is_dir() else ():
        try:
            name = (task / "comm").read_text().strip()
        except (FileNotFoundError, ProcessLookupError):  # the thread ended since the listing
            continue
        if name == MERGE_THREAD_NAME:
            found.append(int(task.name))
    return found


def lower_merge_priority(nice: int, tasks: Path = TASKS) -> int:
    """Raise every merge thread's nice value to ``nice`` (never lower one); the number of threads changed."""
    changed = 0
    for thread in merge_threads(tasks):
        try:
            if os.getpriority(os.PRIO_PROCESS, thread) < nice:
                os.setpriority(os.PRIO_PROCESS, thread, nice)
                changed += 1
        except ProcessLookupError:  # the thread ended since the listing
            continue
    return changed


class MergePriority:
    """A daemon thread that keeps the merge threads at ``nice`` until :meth:`stop` (nothing for nice 0)."""

    def __init__(self, nice: int, interval_s: float = CHECK_INTERVAL_S) -> None:
        self._nice = nice
        self._interval_s = interval_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtap-chdb-merge-priority", daemon=True)
        if nice > 0:
            self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                lower_merge_priority(self._nice)
            except OSError as error:  # e.g. a kernel that refuses: the merges keep the job's priority
                log.warning("cannot lower the priority of chDB's merge threads: %s", error)
                return
            if self._stopped.wait(self._interval_s):
                return

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._interval_s + 1.0)
