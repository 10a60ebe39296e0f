"""The warehouse refuses writes for a while: the batch fails, the job retries it, nothing is lost or doubled.

The fault is real and at the filesystem: the ``events`` table's data directory is made immutable
(``chattr +i``; running as root, a chmod would not stop the engine). ClickHouse then cannot create the new
part of an INSERT and the query fails inside the job's own chDB engine, exactly as a full or read-only disk
fails it. The batch has by then written its dead letters and late events, so the retry also proves that
those writes are not repeated (deduplication tokens). The fault is lifted once the job has failed and
restarted the query at least twice, well inside its limit of five failures in a row.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtap.runtime.broker import LocalKafka
from rtap.settings import MetricsSettings, Settings
from rtap.warehouse import create_client
from tests.support.faults import LARGE, measure, record, scaled, scrape, stream_log
from tests.support.paths import free_port
from tests.support.pipeline import StreamProcess, assert_tables_equal_truth, pipeline_settings, produce
from tests.support.waiting import settled

pytestmark = [pytest.mark.faults, pytest.mark.timeout(1500)]

RETRY_LINE = "batch failed"
FAILURES_BEFORE_RECOVERY = 3 if LARGE else 2


def table_directory(settings: Settings, table: str) -> Path:
    """Where the job's engine keeps ``table``'s parts (asked through the job's read-only channel)."""
    with create_client(settings, readonly=True) as client:
        rows = client.query_rows(
            "SELECT data_paths FROM system.tables WHERE database = {database:String} AND name = {table:String}",
            parameters={"database": client.database, "table": table},
        )
    ((paths,),) = rows
    return Path(paths[0])


@pytest.fixture
def immutable() -> Iterator[list[Path]]:
    """Directories made immutable by the test; always made writable again (or the tmp dir stays forever)."""
    if shutil.which("chattr") is None:
        pytest.fail("chattr (e2fsprogs) is needed to make a table directory immutable")
    frozen: list[Path] = []
    yield frozen
    for path in frozen:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def test_warehouse_write_failures_fail_the_batch_which_is_retried_exactly(
    broker: LocalKafka, tmp_path: Path, immutable: list[Path]
) -> None:
    settings = pipeline_settings(broker, tmp_path, "whfault", max_batch_records=scaled(1_000, 10_000))
    settings = settings.model_copy(update={"metrics": MetricsSettings(port=free_port())})
    truth = produce(settings, count=scaled(8_000, 50_000), seed=41)
    produced = truth.totals().produced

    job = StreamProcess(settings)
    try:
        done = job.wait_processed(1, timeout_s=900)
        events_dir = table_directory(settings, "events")
        probe = subprocess.run(["chattr", "+i", str(events_dir)], capture_output=True, text=True)
        if probe.returncode != 0:
            pytest.fail(f"chattr +i is not permitted here: {probe.stderr.strip()}")
        immutable.append(events_dir)

        deadline = time.monotonic() + 300
        while stream_log(settings).count(RETRY_LINE) < FAILURES_BEFORE_RECOVERY:
            assert job.process.poll() is None, f"the job gave up instead of retrying:\n{job.log_tail()}"
            assert time.monotonic() < deadline, f"the write fault did not fail a batch:\n{job.log_tail()}"
            time.sleep(0.5)
        stalled = job.processed()
        subprocess.run(["chattr", "-i", str(events_dir)], check=True)

        job.wait_processed(produced)
        # The job counts a batch in its metrics right after it writes the batch's row: scrape until they agree.
        scraped = settled(
            lambda: scrape(settings.metrics.port),
            lambda metrics: metrics.get(("rtap_stream_records_read_total", "")) == produced,
            30,
        )
        assert job.stop() == 0
    except BaseException:
        if job.process.poll() is None:
            job.kill()
        raise

    log = stream_log(settings)
    assert "Operation not permitted" in log, "the batch failed for another reason than the injected fault"
    assert done <= stalled < produced, "no batch may commit while the table refuses writes"
    failures = log.count(RETRY_LINE)
    # The job's metrics saw the same: each failed write, and each retry (a restart re-runs the batch).
    assert scraped[("rtap_stream_batch_failures_total", "warehouse")] == failures
    assert scraped[("rtap_stream_restarts_total", "warehouse")] == failures
    assert scraped[("rtap_stream_records_read_total", "")] == produced
    assert_tables_equal_truth(settings, truth)
    row = measure(settings, truth, "warehouse write failure", f"events dir immutable; {failures} failed attempts")
    assert row.exact
    record(row)
