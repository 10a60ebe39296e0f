"""kill -9 of the stream job at random moments of one run, restarted each time, exact at the end.

The large fault suite only (``make faults``): a 200k-event run and five kills. CI's default run has the
small version in ``tests/e2e/test_pipeline.py`` (two kills of a 15k-record run); running both would only
add Spark start-ups to CI.

Each kill lands at a random moment: once the job has committed a random share of the run, after a random
extra delay of up to two batch intervals, so it may hit the middle of a batch (Spark planned it, the sink
wrote some of its tables) or the gap between two.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from rtap.runtime.broker import LocalKafka
from tests.e2e.conftest import StreamProcess, pipeline_settings
from tests.e2e.faults import LARGE, measure, record
from tests.e2e.test_pipeline import assert_tables_equal_truth, job_progress, produce

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.faults,
    pytest.mark.timeout(3600),
    pytest.mark.skipif(not LARGE, reason="large fault suite only (make faults); CI kills in test_pipeline.py"),
]

KILLS = 5


def test_kill_9_at_random_moments_and_restart_leaves_every_table_exact(broker: LocalKafka, tmp_path: Path) -> None:
    settings = pipeline_settings(broker, tmp_path, "kills", max_batch_records=10_000)
    truth = produce(settings, count=200_000, seed=71)
    produced = truth.totals().produced
    rng = random.Random(71)
    # Kill k lands somewhere in the k-th of KILLS + 1 equal shares of the run, so the last run still has work.
    share = produced // (KILLS + 1)
    moments: list[str] = []

    for kill in range(KILLS):
        # Progress is read before the job starts: reading it opens the warehouse, which the job must own.
        target = max(job_progress(settings) + 1, kill * share + rng.randint(1, share))
        job = StreamProcess(settings)
        reached = job.wait_processed(target)
        time.sleep(rng.uniform(0, 2 * settings.stream.trigger_interval_s + 1))
        job.kill()  # SIGKILL to the whole process group: the JVM too, no shutdown hook runs
        moments.append(f"{reached:,}")
        assert reached < produced, "the job finished before it could be killed"
    job = StreamProcess(settings)
    job.wait_processed(produced)
    assert job.stop() == 0

    assert_tables_equal_truth(settings, truth)
    row = measure(settings, truth, f"kill -9 x{KILLS}", "killed at committed records " + ", ".join(moments))
    assert row.exact
    record(row)
