"""A stop of `rtap up` while records wait in Kafka: the job reads them before it stops, so the tables account for
everything sent (`rtap reconcile` is exact after a Ctrl-C, without a restart)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.pipeline import UpProcess, assert_tables_equal_truth, produce

pytestmark = pytest.mark.timeout(600)

# A burst the producer writes in a few seconds and the job takes a few more to read: the stop lands before it has.
EVENTS = 30_000


def test_a_stop_reads_what_kafka_holds_first_and_every_table_equals_the_truth(tmp_path: Path) -> None:
    up = UpProcess(tmp_path)
    try:
        up.wait_console("Spark stream job running")
        truth = produce(up.settings, count=EVENTS, seed=23)
        assert up.processed() < truth.totals().produced  # records still wait when the stop comes
        assert up.stop() == 0, up.console()
    finally:
        up.kill()
    assert_tables_equal_truth(up.settings, truth)
    console = up.console()
    assert "stopping: the stream job reads the " in console
    assert "✓ every record in the input topics read and committed" in console
