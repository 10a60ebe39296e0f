"""The job restarted without its checkpoint, and after Kafka's retention deleted records it had not read.

Checkpoint deleted: the job resumes after the last batch committed in the warehouse (``pipeline_batches``),
so it neither reads the first run again (the windows would double) nor skips any of the second.

Retention: records produced while the job was stopped are deleted (``AdminClient.delete_records`` moves
the log start offset, as retention does). The job must refuse to start with one line naming the partitions
and counts; with ``--accept-data-loss`` it records the ranges in ``data_gaps`` and continues, and every
other record is exact. Both on the module's real broker.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition

from rtap.generate import GroundTruth
from rtap.ingest.producer import produce_run
from rtap.kafka_admin import admin_client
from rtap.runtime.broker import LocalKafka
from rtap.settings import Settings, child_environment
from rtap.stream.kafka import LagProbe
from tests.support.faults import LARGE, measure, record, scaled, stream_log, wait_for_next_minute, without_late
from tests.support.pipeline import (
    assert_tables_equal_truth,
    pipeline_settings,
    produce,
    run_until_drained,
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(1500)]

BATCH = scaled(1_000, 20_000)


@pytest.mark.skipif(
    not LARGE, reason="fault suite only (make faults): CI loses the checkpoint mid-batch in test_pipeline.py"
)
def test_deleted_checkpoint_resumes_after_the_warehouses_last_batch(broker: LocalKafka, tmp_path: Path) -> None:
    settings = pipeline_settings(broker, tmp_path, "nocheckpoint", max_batch_records=BATCH)
    first = produce(settings, count=scaled(4_000, 25_000), seed=51)
    first_done = datetime.now(UTC)
    run_until_drained(settings, first.totals().produced)

    checkpoint = settings.paths.checkpoints / "stream"
    assert (checkpoint / "commits").is_dir()
    shutil.rmtree(checkpoint)
    wait_for_next_minute(first_done)
    second = produce(without_late(settings), count=scaled(4_000, 25_000), seed=52)
    truth = GroundTruth.merge_all([first, second])

    run_until_drained(settings, truth.totals().produced)
    assert "no checkpoint in" in stream_log(settings)
    # sum(input_rows) == produced (inside): no record of the first run was read a second time.
    assert_tables_equal_truth(settings, truth)
    row = measure(settings, truth, "checkpoint deleted", "stopped, checkpoint dir removed, restarted")
    assert row.exact
    record(row)


def produce_truth(settings: Settings, count: int, seed: int) -> tuple[GroundTruth, Path]:
    report = produce_run(settings, rate=0, count=count, seed=seed)
    assert report.failed == 0
    return GroundTruth.from_json(report.truth_path.read_bytes()), report.truth_path


def delete_before(settings: Settings, offsets: dict[int, int]) -> None:
    """What retention does to old segments: the log start offset of each partition moves to ``offsets``."""
    admin = admin_client(settings.kafka)
    request = [TopicPartition(settings.kafka.topic, p, o) for p, o in offsets.items()]
    for partition, future in admin.delete_records(request, operation_timeout=30).items():
        assert future.result().low_watermark == offsets[partition.partition]


def test_retention_deleting_unread_records_stops_the_job_or_is_skipped_and_counted(
    broker: LocalKafka, tmp_path: Path
) -> None:
    settings = pipeline_settings(broker, tmp_path, "retention", max_batch_records=BATCH)
    read, read_path = produce_truth(settings, count=scaled(3_000, 20_000), seed=61)
    read_done = datetime.now(UTC)
    run_until_drained(settings, read.totals().produced)

    lost = produce(settings, count=scaled(2_000, 10_000), seed=62)  # produced while the job is stopped
    ends = LagProbe(settings.kafka).latest_offsets()
    lost_end = {p: offset for (topic, p), offset in ends.items() if topic == settings.kafka.topic}
    wait_for_next_minute(read_done)
    after, after_path = produce_truth(without_late(settings), count=scaled(3_000, 20_000), seed=63)
    delete_before(settings, lost_end)
    deleted = lost.totals().produced

    refused = subprocess.run(
        [sys.executable, "-m", "rtap", "stream"],
        env=child_environment(settings),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode != 0
    (line,) = [text for text in refused.stderr.splitlines() if text.strip()][-1:]
    assert f"Kafka deleted {deleted} records of {settings.kafka.topic} that the job had not read" in line
    assert "partition 0 offsets" in line
    assert "--accept-data-loss" in line
    assert "Traceback" not in refused.stderr

    accepting = settings.model_copy(update={"stream": settings.stream.model_copy(update={"accept_data_loss": True})})
    truth = GroundTruth.merge_all([read, after])
    run_until_drained(accepting, truth.totals().produced)
    assert f"skipping {deleted} records" in stream_log(settings)
    assert list(settings.paths.checkpoints.glob("stream.data-loss-*")), "the old checkpoint is kept aside"
    assert_tables_equal_truth(settings, truth)

    # The operator's view: everything read is exact; the skipped records are one listed, counted check.
    reconciled = subprocess.run(
        [sys.executable, "-m", "rtap", "reconcile", "--truth", str(read_path), "--truth", str(after_path)],
        env=child_environment(settings), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert reconciled.returncode != 0
    assert "1 of 9 checks differ: lost_by_retention" in reconciled.stdout + reconciled.stderr
    assert f"{deleted}" in reconciled.stdout
    row = measure(settings, truth, "retention deleted unread records", "refused, then --accept-data-loss")
    assert row.exact
    assert row.recorded_gap == deleted
    record(row)
