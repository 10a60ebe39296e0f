"""kill -9 of the stream job at random moments of one run, restarted each time, exact at the end.

The large fault suite only (``make faults``): 600k events produced at 20,000 events/s while the job is killed
five times, in batches of up to 50k records. CI's default run has the small version in
``tests/e2e/test_pipeline.py`` (two kills of a 120k-event run at 10,000 events/s); running both would only add
Spark start-ups to CI.

Each kill lands at a random moment (``tests.e2e.faults.kill_9_while_producing``): once the job has committed a
random share of the run, after a random extra delay of up to two batch intervals, so it may hit the middle of a
batch (Spark planned it, the sink wrote some of its tables) or the gap between two.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rtap.runtime.broker import LocalKafka
from tests.support.faults import LARGE, kill_9_while_producing, measure, record
from tests.support.pipeline import assert_tables_equal_truth, pipeline_settings

pytestmark = [
    pytest.mark.faults,
    pytest.mark.timeout(3600),
    pytest.mark.skipif(not LARGE, reason="large fault suite only (make faults); CI kills in test_pipeline.py"),
]

KILLS = 5
RATE = 20_000.0
EVENTS = 600_000
BATCH_RECORDS = 50_000  # half a kill's share of the run: each restarted job commits batches before its kill


def test_kill_9_at_random_moments_and_restart_leaves_every_table_exact(broker: LocalKafka, tmp_path: Path) -> None:
    settings = pipeline_settings(broker, tmp_path, "kills", max_batch_records=BATCH_RECORDS)
    truth, moments = kill_9_while_producing(settings, rate=RATE, events=EVENTS, kills=KILLS, seed=71)
    assert_tables_equal_truth(settings, truth)
    detail = f"producing {RATE:,.0f}/s; killed at committed records " + ", ".join(moments)
    row = measure(settings, truth, f"kill -9 x{KILLS}", detail)
    assert row.exact
    record(row)
