"""Records lost by retention in the reconciliation: counted, listed, never an unexplained difference."""

from __future__ import annotations

import dataclasses

from rtap.generate import GroundTruth
from rtap.ops.reconcile import LostRange, Observed, format_report, reconcile


def _truth(dead_letters: int) -> GroundTruth:
    truth = GroundTruth(partitions=2, watermark_delay_s=30)
    for _ in range(dead_letters):
        truth.add_dead_letter()
    return truth


def _observed(truth: GroundTruth) -> Observed:
    return Observed(events=0, dead_letters=truth.dead_letters, late_events=0, duplicates=0, sessions=0)


GAPS = (LostRange(0, 10, 40, 30), LostRange(1, 0, 5, 5))


def test_no_gap_is_an_explicit_zero() -> None:
    truth = _truth(3)
    report = reconcile(truth, _observed(truth))
    assert report.ok
    assert ("lost_by_retention", "0", "0", "ok") in list(format_report(report))


def test_lost_records_outside_the_truth_fail_only_their_own_check_with_every_range_listed() -> None:
    truth = _truth(3)
    report = reconcile(truth, dataclasses.replace(_observed(truth), lost_by_retention=GAPS))
    assert [check.name for check in report.failed] == ["lost_by_retention"]
    (lost,) = report.failed
    assert lost.observed == "35"
    assert lost.differences == ("partition 0 offsets 10..39: 30 records", "partition 1 offsets 0..4: 5 records")


def test_lost_records_inside_the_truth_explain_the_accounted_difference() -> None:
    truth = _truth(38)
    observed = dataclasses.replace(_observed(truth), dead_letters=3, lost_by_retention=GAPS)
    report = reconcile(truth, observed)
    by_name = {check.name: check for check in report.failed}
    assert set(by_name) == {"dead_letters", "accounted", "lost_by_retention"}
    assert by_name["accounted"].differences == ("off by -35", "35 records lost by retention (lost_by_retention)")
