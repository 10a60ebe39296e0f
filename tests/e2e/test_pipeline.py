"""The whole pipeline: seeded generator -> real Kafka -> Spark job (own process) -> chDB, reconciled exactly."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest

from rtap.generate import GroundTruth
from rtap.ingest.producer import produce_run
from rtap.settings import Settings, child_environment
from rtap.warehouse import create_client
from tests.e2e.conftest import StreamProcess, pipeline_settings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]


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
    settings = pipeline_settings(broker, tmp_path, "crash", max_batch_records=1500)
    truth = produce(settings, count=15_000, seed=11)
    produced = truth.totals().produced
    rng = random.Random(11)

    for _ in range(2):
        job = StreamProcess(settings)
        job.wait_processed(rng.randint(1, produced // 3) + job_progress(settings))
        job.kill()  # no shutdown hooks, mid-batch or between batches
    job = StreamProcess(settings)
    job.wait_processed(produced)
    assert job.stop() == 0
    assert_tables_equal_truth(settings, truth)


def job_progress(settings: Settings) -> int:
    """Records committed so far (0 before the first run created the tables)."""
    if not settings.paths.chdb.exists():
        return 0
    with create_client(settings) as client:
        return int(client.query_rows("SELECT sum(input_rows) FROM {db}.pipeline_batches FINAL")[0][0] or 0)
