"""The rule a live step is judged by (no services)."""

from __future__ import annotations

import pytest
from rtap_bench.search import FAILED, HELD, PRODUCER
from rtap_bench.sustain import FRESHNESS_P99_LIMIT_S, PRODUCER_BEHIND_LIMIT_S, BatchPoint, judge, slope


def _batches(lags: list[int], every_s: float = 1.0) -> list[BatchPoint]:
    return [BatchPoint(1_000.0 + i * every_s, lag) for i, lag in enumerate(lags)]


def test_slope_is_least_squares() -> None:
    assert slope([(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]) == pytest.approx(2.0)
    assert slope([(5.0, 1.0), (5.0, 9.0)]) == 0.0


def test_a_steady_lag_within_the_freshness_bound_holds_and_a_growing_lag_fails() -> None:
    steady = judge(1_000, _batches([400, 600, 500, 450, 550]), freshness_p99_s=0.8, producer_behind_s=0.0)
    assert steady.outcome == HELD, steady.reason
    assert steady.batches == 5
    growing = judge(1_000, _batches([0, 500, 1_000, 1_500, 2_000]), freshness_p99_s=0.8, producer_behind_s=0.0)
    assert growing.outcome == FAILED
    assert growing.lag_growth_per_s == pytest.approx(500.0)
    assert "lag grew" in growing.reason


def test_freshness_beyond_the_bound_fails() -> None:
    stale = judge(1_000, _batches([0, 0, 0]), freshness_p99_s=FRESHNESS_P99_LIMIT_S + 0.01, producer_behind_s=0.0)
    assert stale.outcome == FAILED
    assert "freshness p99" in stale.reason


def test_a_sender_behind_its_schedule_is_its_own_outcome_not_the_jobs() -> None:
    # Even with a growing lag: the events were stamped at times the sender did not keep, so nothing is known.
    behind = judge(
        1_000, _batches([0, 500, 1_000]), freshness_p99_s=9.0, producer_behind_s=PRODUCER_BEHIND_LIMIT_S + 0.5
    )
    assert behind.outcome == PRODUCER
    assert "sender fell 1.5 s behind" in behind.reason


def test_fewer_than_two_batches_in_the_judged_half_is_falling_behind() -> None:
    verdict = judge(1_000, _batches([0]), freshness_p99_s=0.5, producer_behind_s=0.0)
    assert verdict.outcome == FAILED
    assert verdict.lag_growth_per_s is None
    nothing_stored = judge(1_000, _batches([0, 0]), freshness_p99_s=None, producer_behind_s=0.0)
    assert nothing_stored.outcome == FAILED
