"""The parse stage's Python workers outlive a quiet minute (``rtap.stream.job.KEEP_WARM_S``).

Spark stops its pooled Python workers after a minute without a task, a constant of its JVM: only a real session
idle for longer than that can show whether the job keeps them. ~80 s, mostly asleep.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path

from rtap.settings import Settings
from rtap.stream.job import KEEP_WARM_S, StreamJob

# Spark's idle minute, plus its monitor's 10 s period, plus a margin.
QUIET_S = 80.0


def _python_workers(jvm: int) -> set[int]:
    """The Python workers of the Spark JVM ``jvm``: what its pyspark.daemon processes forked."""
    parents: dict[int, int] = {}
    daemons: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # exited meanwhile
            continue
        pid = int(entry.name)
        parents[pid] = int(stat[stat.rindex(")") + 2 :].split()[1])
        if b"pyspark.daemon" in cmdline:
            daemons.add(pid)
    return {pid for pid in daemons if parents[pid] in daemons and parents.get(parents[pid]) == jvm}


def test_the_python_workers_that_ran_the_warm_up_still_run_after_a_quiet_minute(spark, tmp_path: Path) -> None:
    job = StreamJob(Settings(data_dir=tmp_path), client=None)  # type: ignore[arg-type]  # the stage writes nothing
    try:
        session, stage = job._warmed_up(spark)
    finally:
        gc.unfreeze()
    jvm = spark.sparkContext._gateway.proc.pid  # the session's JVM, which pyspark started
    workers = _python_workers(jvm)
    assert workers, "the warm-up started no Python worker"
    runs = 0
    deadline = time.monotonic() + QUIET_S
    while time.monotonic() < deadline:  # what the job's watch does between batches, once a second
        before = job._stage_ran
        job._keep_warm(session, stage)
        runs += job._stage_ran != before
        time.sleep(1)
    assert runs >= int(QUIET_S // KEEP_WARM_S)
    assert _python_workers(jvm) == workers  # the same processes: none stopped, none started again
