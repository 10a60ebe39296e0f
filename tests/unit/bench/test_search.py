"""The sustainable-rate search on synthetic judges: it finds the ceiling, within a bounded number of steps."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from rtap_bench.search import FAILED, HELD, PRODUCER, Outcome, RateSearch

FIXED = (1_000.0, 10_000.0, 50_000.0)


def run(judge: Callable[[float], Outcome], max_steps: int = 7, search: RateSearch | None = None) -> RateSearch:
    """What ``rtap_bench.sustain`` does: the fixed rates first, then the search's own steps."""
    search = search or RateSearch()
    for rate in FIXED:
        search.record(rate, judge(rate))
    for _ in range(max_steps):
        step = search.next_rate()
        if step is None:
            break
        search.record(step, judge(step))
    return search


@pytest.mark.parametrize("ceiling", [12_000.0, 49_000.0, 63_000.0, 80_000.0, 150_000.0])
def test_the_ceiling_is_found_and_bracketed_within_the_resolution(ceiling: float) -> None:
    search = run(lambda rate: HELD if rate <= ceiling else FAILED)
    assert search.ceiling_found
    low, high = search.highest_held, search.lowest_failed
    assert low is not None
    assert high is not None
    assert low <= ceiling < high
    assert high / low <= search.resolution


def test_every_step_holding_keeps_stepping_up_instead_of_stopping_below_the_ceiling() -> None:
    search = run(lambda rate: HELD, max_steps=3)
    rates = [rate for rate, _ in search.tried]
    assert rates == pytest.approx([*FIXED, 75_000, 112_500, 168_750])
    assert not search.ceiling_found
    assert search.highest_held == pytest.approx(168_750)
    assert search.lowest_failed is None


def test_a_failed_fixed_rate_is_bisected_from_below() -> None:
    search = RateSearch()
    search.record(1_000, HELD)
    search.record(10_000, FAILED)
    assert search.next_rate() == pytest.approx(3_162.28, rel=1e-4)


def test_the_search_stops_once_the_bracket_is_narrow() -> None:
    search = RateSearch(resolution=1.1)
    search.record(50_000, HELD)
    search.record(54_000, FAILED)
    assert search.next_rate() is None


def test_a_sender_that_falls_behind_bounds_the_search_but_is_no_ceiling() -> None:
    search = run(lambda rate: HELD if rate <= 90_000 else PRODUCER)
    assert not search.ceiling_found
    assert search.lowest_failed is None
    limit, held = search.producer_limit, search.highest_held
    assert limit is not None
    assert held is not None
    assert held <= 90_000 < limit
    assert limit / held <= search.resolution
    assert search.next_rate() is None


def test_a_failure_below_the_highest_rate_held_is_noise_not_the_ceiling() -> None:
    search = RateSearch()
    for rate, outcome in ((1_000, HELD), (10_000, FAILED), (50_000, HELD)):
        search.record(rate, outcome)
    assert search.lowest_failed is None
    assert search.next_rate() == pytest.approx(75_000)


def test_nothing_holding_steps_down_to_a_floor() -> None:
    search = run(lambda rate: FAILED, max_steps=50)
    assert search.highest_held is None
    assert not search.ceiling_found
    assert min(rate for rate, _ in search.tried) >= search.min_rate
    assert search.next_rate() is None


def test_an_unseeded_search_has_no_next_rate() -> None:
    with pytest.raises(ValueError, match="seed"):
        RateSearch().next_rate()
