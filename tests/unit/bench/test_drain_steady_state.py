"""B3 and P are timed the same way: from the end of the first micro-batch to the end of the last."""

from __future__ import annotations

import pytest
from rtap_bench.drain import BatchEnd, steady_state


def test_the_first_batch_and_its_start_up_are_left_out() -> None:
    # A 12 s first batch (start-up, code generation), then three batches of 100k records 2 s apart.
    batches = [BatchEnd(100_000, 112.0), BatchEnd(100_000, 114.0), BatchEnd(100_000, 116.0), BatchEnd(50_000, 117.0)]
    sample = steady_state(batches)
    assert sample is not None
    assert (sample.records, sample.seconds) == (250_000, 5.0)
    assert sample.per_s == pytest.approx(50_000)


def test_order_comes_from_the_end_times_and_empty_batches_do_not_count() -> None:
    sample = steady_state([BatchEnd(10, 3.0), BatchEnd(0, 9.0), BatchEnd(10, 1.0), BatchEnd(10, 2.0)])
    assert sample is not None
    assert (sample.records, sample.seconds) == (20, 2.0)


def test_one_batch_has_no_steady_state() -> None:
    assert steady_state([BatchEnd(100, 5.0)]) is None
    assert steady_state([BatchEnd(100, 5.0), BatchEnd(0, 6.0)]) is None
