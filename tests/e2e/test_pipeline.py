"""The whole pipeline: seeded generator -> real Kafka -> Spark job (own process) -> chDB, reconciled exactly."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rtap.generate import GroundTruth
from rtap.ingest.producer import produce_run
from rtap.settings import Settings, child_environment
from rtap.warehouse import create_client
from tests.e2e.conftest import StreamProcess, pipeline_settings
from tests.e2e.faults import kill_9_while_producing

pytestmark = pytest.mark.timeout(1500)

# The CI-sized kill test: traffic at a rate the job was built for, 12 s of it, in batches of at most 20k records.
KILL_RATE = 10_000.0
KILL_EVENTS = 120_000
KILL_BATCH_RECORDS = 20_000


def produce(settings: Settings, count: int, seed: int) -> GroundTruth:
    report = produce_run(settings, rate=0, count=count, seed=seed)
    assert report.failed == 0
    return GroundTruth.from_json((settings.paths.truth / f"{report.run_id}.json").read_bytes())


def assert_tables_equal_truth(settings: Settings, truth: GroundTruth) -> None:
    """Every table against the truth: totals, every page window, every type window."""
    totals = truth.totals()
    with create_client(settings) as client:
        counts = client.query_rows(
            "SELECT (SELECT count() FROM {db}.events FINAL), (SELECT count() FROM {db}.dead_letters),"
            " (SELECT count() FROM {db}.late_events), (SELECT sum(duplicates) FROM {db}.pipeline_batches FINAL),"
            " (SELECT sum(input_rows) FROM {db}.pipeline_batches FINAL)"
        )[0]
        pages = client.query_rows("SELECT window_start, page_url, views, unique_users FROM {db}.page_views_1m FINAL")
        types = client.query_rows(
            "SELECT toUnixTimestamp(window_start), event_type, events, users, orders, revenue FROM {db}.events_1m FINAL"
        )
    assert counts == (totals.accepted, totals.dead_letters, totals.late, totals.duplicates, totals.produced)
    assert {(w, p): (v, u) for w, p, v, u in pages} == {
        (int(w.timestamp()), p): tuple(row) for (w, p), row in truth.page_views_1m().items()
    }
    assert {(w, t): (e, u, o, r) for w, t, e, u, o, r in types} == {
        (int(w.timestamp()), t): tuple(row) for (w, t), row in truth.events_1m().items()
    }


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
