"""The floor's per-batch files and its per-event freshness: the same definition as the full job's (no services)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pytest
from rtap_bench.floor import against_floor, batch_file, floor_freshness, read_batches, rows_in, write_batch

START = 1_800_000_000.0


def _records(rows: Sequence[tuple[str | None, int | None]]) -> pa.Table:
    ids, times = zip(*rows, strict=True) if rows else ((), ())
    return pa.table({"event_id": pa.array(ids, pa.string()), "event_ms": pa.array(times, pa.int64())})


def test_a_batch_file_carries_its_records_its_time_and_its_count_in_its_name(tmp_path: Path) -> None:
    first = write_batch(tmp_path, 7, _records([("a", 1_000), (None, None)]), committed=START + 0.25)
    second = write_batch(tmp_path, 8, _records([("b", 2_000)]), committed=START + 0.5)
    assert first == batch_file(tmp_path, 7, 2)
    assert (rows_in(first), rows_in(second)) == (2, 1)
    assert not list(tmp_path.glob("*.partial"))
    table = read_batches([first, second])
    assert table.column_names == ["event_id", "event_ms", "committed"]
    assert table.to_pylist() == [
        {"event_id": "a", "event_ms": 1_000, "committed": START + 0.25},
        {"event_id": None, "event_ms": None, "committed": START + 0.25},
        {"event_id": "b", "event_ms": 2_000, "committed": START + 0.5},
    ]
    assert read_batches([]).num_rows == 0


def _batches(tmp_path: Path) -> pa.Table:
    """100 events one per 10 ms from START; the first 50 recorded at +2 s, the rest at +3 s (as in
    test_traffic's job freshness test); plus a copy of event 10 at +3 s, a late event two minutes before
    START and a truncated record (nulls)."""
    ms = round(START * 1000)
    first = [(f"e{i}", ms + 10 * i) for i in range(50)] + [(None, None)]
    second = [(f"e{i}", ms + 10 * i) for i in range(50, 100)] + [("e10", ms + 100), ("late", ms - 120_000)]
    paths = [
        write_batch(tmp_path, 1, _records(first), committed=START + 2),
        write_batch(tmp_path, 2, _records(second), committed=START + 3),
    ]
    return read_batches(paths)


def test_freshness_is_each_events_first_batch_time_minus_its_event_time(tmp_path: Path) -> None:
    fresh = floor_freshness(_batches(tmp_path), started=START, ended=START + 1.0)
    values = sorted([2.0 - i / 100 for i in range(50)] + [3.0 - i / 100 for i in range(50, 100)])
    # The copy counts once, at its first batch; the late event and the truncated record are not events of the run.
    assert fresh["events"] == 100
    # Linear between closest ranks, as the job's quantilesExactInclusive: rank 0.99 * 99 = 98.01.
    assert fresh["p99_s"] == pytest.approx(values[98] + 0.01 * (values[99] - values[98]))
    assert fresh["p50_s"] == pytest.approx((values[49] + values[50]) / 2)
    assert fresh["max_s"] == pytest.approx(2.5)
    assert fresh["stored_after_end_s"] == pytest.approx(2.0)


def test_only_events_due_within_the_run_count(tmp_path: Path) -> None:
    records = _batches(tmp_path)
    # Events due in [START + 0.5, START + 0.5 + 1 s): the last 50 (the window closes a second after the end).
    assert floor_freshness(records, started=START + 0.5, ended=START + 0.5)["events"] == 50
    assert floor_freshness(records, started=START + 10, ended=START + 11) == {
        "events": 0,
        "p50_s": None,
        "p99_s": None,
        "max_s": None,
        "stored_after_end_s": None,
    }


def _step(kind: str, rate: float, p50: float | None, p99: float | None, behind: float = 0.0, **extra: object) -> dict:
    fresh = {"events": 10, "p50_s": p50, "p99_s": p99, "max_s": p99, "stored_after_end_s": 0.5}
    return {"kind": kind, "rate": rate, "producer_max_behind_s": behind, "freshness": fresh, **extra}


def test_the_job_is_compared_with_the_floor_at_each_rate_the_floor_ran_at() -> None:
    job = [
        _step("fixed", 1_000.0, 0.5, 0.9, outcome="held"),
        _step("fixed", 10_000.0, 0.8, 1.5, outcome="held"),
        _step("search", 1_000.0, 9.0, 9.0, outcome="failed"),  # only the fixed-rate step is compared
    ]
    floor = [_step("floor", 1_000.0, 0.25, 0.3), _step("floor", 10_000.0, 0.4, 0.5), _step("floor", 50_000.0, 0.5, 0.6)]
    rows = {row["rate"]: row for row in against_floor(job, floor)}
    assert rows[1_000.0]["p99_over_floor"] == pytest.approx(3.0)
    assert rows[1_000.0]["p50_over_floor"] == pytest.approx(2.0)
    assert rows[10_000.0] == {
        "rate": 10_000.0,
        "job_p50_s": 0.8,
        "job_p99_s": 1.5,
        "floor_p50_s": 0.4,
        "floor_p99_s": 0.5,
        "p50_over_floor": pytest.approx(2.0),
        "p99_over_floor": pytest.approx(3.0),
        "sender_behind": False,
    }
    # A rate the job did not run at (its live phase failed): no ratio, never a made-up one.
    assert rows[50_000.0]["job_p99_s"] is None
    assert rows[50_000.0]["p99_over_floor"] is None


def test_a_sender_behind_in_either_step_is_flagged() -> None:
    floor_behind = against_floor(
        [_step("fixed", 1_000.0, 0.5, 0.9, outcome="held")], [_step("floor", 1_000.0, 0.2, 0.3, behind=1.5)]
    )
    job_behind = against_floor(
        [_step("fixed", 1_000.0, 0.5, 0.9, outcome="producer")], [_step("floor", 1_000.0, 0.2, 0.3)]
    )
    assert floor_behind[0]["sender_behind"]
    assert job_behind[0]["sender_behind"]
    assert against_floor([], [_step("floor", 1_000.0, None, None)])[0]["p99_over_floor"] is None
