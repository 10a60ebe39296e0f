"""A backlog larger than one micro-batch drains as a sequence of capped batches, and reconciles exactly.

The topic is filled while the job is down (the seeded generator with dirt, its ground truth). The first run caps
batches by records (``max_batch_records``) and is stopped after a few of them; the second run has a bytes cap
(``max_batch_bytes``) tighter than the records cap, and drains the rest in batches sized by the bytes per record
the first run's batches recorded in ``pipeline_batches``. Whatever boundaries the two caps and the stop made, the
tables then equal the truth.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rtap.runtime.broker import LocalKafka
from rtap.settings import Settings
from rtap.stream.caps import batch_cap, recent_record_bytes
from rtap.stream.checkpoint import committed_batches as spark_commits
from rtap.stream.checkpoint import planned_batches
from rtap.stream.job import pipeline_id
from rtap.warehouse import create_client
from tests.support.faults import measure, stream_log
from tests.support.pipeline import assert_tables_equal_truth, pipeline_settings, produce, run_until_drained

pytestmark = pytest.mark.timeout(900)

RECORDS_CAP = 20_000
BYTES_CAP = 4 * 2**20  # ~10k of the generator's records: tighter than RECORDS_CAP
EVENTS = 100_000  # ~103k records with the generator's duplicates: six batches at RECORDS_CAP
FIRST_RUN_BATCHES = 2
# The first run starts a batch at most every TRIGGER_S, and the test stops it as soon as its log shows the
# FIRST_RUN_BATCHES-th commit: the stop lands while the job waits for its next trigger, well before the end of the
# backlog, on a fast machine or a slow one (a stop in the middle of a batch would be harmless too, only later).
TRIGGER_S = 10.0


def committed_batches(settings: Settings) -> list[tuple[int, int, int]]:
    """(batch_id, input_rows, input_bytes) of every batch that read records, in order."""
    with create_client(settings) as client:
        return [
            (int(batch), int(rows), int(size))
            for batch, rows, size in client.query_rows(
                "SELECT batch_id, input_rows, input_bytes FROM {db}.pipeline_batches FINAL"
                " WHERE input_rows > 0 ORDER BY batch_id"
            )
        ]


def with_stream(settings: Settings, **changes: object) -> Settings:
    return settings.model_copy(update={"stream": settings.stream.model_copy(update=changes)})


def test_a_backlog_of_many_batches_drains_in_batches_capped_by_records_and_bytes(
    broker: LocalKafka, tmp_path: Path
) -> None:
    settings = pipeline_settings(broker, tmp_path, "backlog", max_batch_records=RECORDS_CAP)
    truth = produce(settings, count=EVENTS, seed=81)  # while no job runs: a backlog
    produced = truth.totals().produced
    assert produced > 5 * RECORDS_CAP

    run_until_drained(with_stream(settings, trigger_interval_s=TRIGGER_S), batches=FIRST_RUN_BATCHES)
    by_records = committed_batches(settings)
    read = sum(rows for _, rows, _ in by_records)
    assert len(by_records) >= FIRST_RUN_BATCHES
    assert all(rows <= RECORDS_CAP for _, rows, _ in by_records), by_records
    assert read < produced - 2 * RECORDS_CAP, "the first run read almost all of the backlog: nothing left to cap"

    checkpoint = settings.paths.checkpoints / "stream"
    committed_checkpoint = spark_commits(checkpoint)
    with create_client(settings) as client:
        # what the second run divides its bytes cap by
        record_bytes = recent_record_bytes(client, pipeline_id(checkpoint), committed_checkpoint[-1])
    by_bytes_settings = with_stream(settings, max_batch_bytes=BYTES_CAP)
    cap = batch_cap(by_bytes_settings.stream, record_bytes)
    assert cap < RECORDS_CAP, f"{record_bytes:.0f} bytes per record: the bytes cap would not bind"
    # A stop can land after the first run planned its next batch (offsets/<n> written) but before it committed
    # it: Spark replays that batch with the offsets it planned, at the records cap, before the bytes cap applies.
    replayed = {n for n in planned_batches(checkpoint) if n > by_records[-1][0]}
    run_until_drained(by_bytes_settings, produced)

    assert f"micro-batches of at most {cap} records" in stream_log(settings)
    second_run = [batch for batch in committed_batches(settings) if batch[0] > by_records[-1][0]]
    assert all(rows <= RECORDS_CAP for n, rows, _ in second_run if n in replayed), (replayed, second_run)
    by_bytes = [batch for batch in second_run if batch[0] not in replayed]
    read += sum(rows for n, rows, _ in second_run if n in replayed)
    assert len(by_bytes) >= (produced - read) // cap
    assert all(rows <= cap for _, rows, _ in by_bytes), (cap, by_bytes)
    # About the bytes cap: it divides by the average record of the last batches, and records differ in size.
    assert all(size <= 1.1 * BYTES_CAP for _, _, size in by_bytes), by_bytes

    assert_tables_equal_truth(settings, truth)  # sum(input_rows) == produced: nothing read twice or skipped
    row = measure(settings, truth, "backlog", f"{len(by_records)} + {len(by_bytes)} capped batches")
    assert row.exact, row
