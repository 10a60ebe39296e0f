"""The whole pipeline: seeded generator -> real Kafka -> Spark job (own process) -> chDB, reconciled exactly."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rtap.settings import child_environment
from tests.support.faults import kill_9_while_producing
from tests.support.pipeline import StreamProcess, assert_tables_equal_truth, pipeline_settings, produce

pytestmark = pytest.mark.timeout(1500)

# The CI-sized kill test: traffic at a rate the job was built for, 12 s of it, in batches of at most 20k records.
KILL_RATE = 10_000.0
KILL_EVENTS = 120_000
KILL_BATCH_RECORDS = 20_000


def test_seeded_run_with_dirt_matches_the_generators_truth_exactly(broker, tmp_path) -> None:
    settings = pipeline_settings(broker, tmp_path, "exact")
    truth = produce(settings, count=20_000, seed=7)
    totals = truth.totals()
    assert min(totals.duplicates, totals.late, totals.dead_letters) > 50  # the run really is dirty

    job = StreamProcess(settings)
    job.wait_processed(totals.produced)
    assert job.stop() == 0
    assert_tables_equal_truth(settings, truth)
    reconcile = subprocess.run(
        [sys.executable, "-m", "rtap", "reconcile"], env=child_environment(settings), capture_output=True, text=True
    )
    assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr


def test_kill_9_mid_stream_and_restart_leaves_every_table_exact(broker, tmp_path) -> None:
    """Two kills of a run produced at the job's new rates (the large version: tests/e2e/test_faults_kill.py)."""
    settings = pipeline_settings(broker, tmp_path, "crash", max_batch_records=KILL_BATCH_RECORDS)
    truth, _moments = kill_9_while_producing(settings, rate=KILL_RATE, events=KILL_EVENTS, kills=2, seed=11)
    assert_tables_equal_truth(settings, truth)


def test_kill_9_mid_batch_and_a_lost_checkpoint_leave_every_table_exact(broker, tmp_path) -> None:
    """The same kills, each also losing Spark's checkpoint: the next job resumes from the warehouse's last
    committed batch and cuts its batches at other offsets than the killed one had (issue #22)."""
    settings = pipeline_settings(broker, tmp_path, "lost", max_batch_records=KILL_BATCH_RECORDS)
    truth, _moments = kill_9_while_producing(
        settings, rate=KILL_RATE, events=KILL_EVENTS, kills=2, seed=13, lose_checkpoint=True
    )
    assert_tables_equal_truth(settings, truth)
