"""The sustainable-rate rule, the rate search and the per-event freshness arithmetic (no services)."""

from __future__ import annotations

import pytest

from rtap.bench.sustain import (
    FRESHNESS_P99_LIMIT_S,
    BatchPoint,
    event_freshness,
    first_seen,
    judge,
    next_rate,
    percentile,
    slope,
)


def _batches(lags: list[int], freshness_ms: int = 2_000, every_s: float = 1.0) -> list[BatchPoint]:
    return [BatchPoint(1_000.0 + i * every_s, lag, freshness_ms, 1_000, 900) for i, lag in enumerate(lags)]


def test_percentile_matches_linear_interpolation() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([3.0], 99) == 3.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_slope_is_least_squares() -> None:
    assert slope([(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]) == pytest.approx(2.0)
    assert slope([(5.0, 1.0), (5.0, 9.0)]) == 0.0


def test_a_steady_lag_holds_and_a_growing_lag_does_not() -> None:
    steady = judge(1_000, _batches([400, 600, 500, 450, 550]), producer_max_lag_s=0.0)
    assert steady.sustainable, steady.reason
    assert steady.batches == 5
    growing = judge(1_000, _batches([0, 500, 1_000, 1_500, 2_000]), producer_max_lag_s=0.0)
    assert not growing.sustainable
    assert growing.lag_growth_per_s == pytest.approx(500.0)
    assert "lag grew" in growing.reason


def test_freshness_beyond_the_bound_and_a_late_producer_do_not_hold() -> None:
    stale = judge(1_000, _batches([0, 0, 0], freshness_ms=int(FRESHNESS_P99_LIMIT_S * 1000) + 1), 0.0)
    assert not stale.sustainable
    assert "freshness" in stale.reason
    behind = judge(1_000, _batches([0, 0, 0]), producer_max_lag_s=5.0)
    assert not behind.sustainable
    assert "producer" in behind.reason


def test_fewer_than_two_batches_in_the_judged_half_is_falling_behind() -> None:
    verdict = judge(1_000, _batches([0]), producer_max_lag_s=0.0)
    assert not verdict.sustainable
    assert verdict.lag_growth_per_s is None


def test_the_search_doubles_halves_then_bisects() -> None:
    assert next_rate(1_000, None, 1_000) == 2_000
    assert next_rate(None, 1_000, 1_000) == 500
    assert next_rate(1_000, 4_000, 4_000) == pytest.approx(2_000)


def test_first_seen_is_the_first_poll_reaching_the_value() -> None:
    samples = [(10.0, 1, 0.0), (10.2, 3, 0.0), (10.4, 4, 0.0)]
    assert first_seen(samples, lambda s: s[1], 2) == 10.2
    assert first_seen(samples, lambda s: s[1], 5) is None


def test_event_freshness_uses_the_poll_that_first_saw_the_batch() -> None:
    # Batch 1 (started at 100.5) is visible in events at the poll of 101.0 and its window rows at 101.2;
    # batch 2 is never seen (the probe stopped): its event counts as unseen.
    samples = [(100.8, 0, 99.0), (101.0, 1, 99.0), (101.2, 1, 100.9)]
    events = [(1, 100.0, True), (1, 100.5, False), (2, 101.1, True)]
    result = event_freshness(events, {1: 100.5, 2: 101.3}, samples)
    assert result["raw"]["events"] == 2
    assert result["raw"]["p50_s"] == pytest.approx(0.75)
    assert result["windows"]["events"] == 1
    assert result["windows"]["p99_s"] == pytest.approx(1.2)
    assert result["events_unseen"] == 1
