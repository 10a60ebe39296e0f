"""Retention gaps: which deleted offsets the job had not read, the one-line refusal, Spark's start offsets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rtap.stream.gaps import Gap, describe, find_gaps, set_checkpoint_aside, spark_starting_offsets


def test_a_log_start_past_the_resume_position_is_a_gap_of_exactly_the_unread_records() -> None:
    positions = {0: 100, 1: 50, 2: 70}
    log_start = {0: 100, 1: 80, 2: 10}  # 0: nothing deleted unread; 1: 30 deleted unread; 2: only read ones
    assert find_gaps(positions, log_start) == [Gap(1, 50, 80)]
    assert Gap(1, 50, 80).records == 30


def test_a_partition_never_read_owed_every_record_from_offset_0() -> None:
    assert find_gaps({0: 5}, {0: 5, 1: 40}) == [Gap(1, 0, 40)]
    # Starting from the latest offsets, a partition never read owed nothing.
    assert find_gaps({0: 5}, {0: 5, 1: 40}, from_earliest=False) == []


def test_a_pipeline_that_committed_nothing_starts_wherever_its_setting_says() -> None:
    assert find_gaps({}, {0: 1_000, 1: 7}) == []


def test_the_description_names_partitions_offsets_and_counts() -> None:
    text = describe([Gap(1, 50, 80, "t"), Gap(4, 0, 1, "u")])
    assert text == "t partition 1 offsets 50..79 (30 records), u partition 4 offsets 0..0 (1 records)"


def test_spark_gets_every_partition_and_unread_ones_start_at_the_setting() -> None:
    offsets = json.loads(spark_starting_offsets({"t": ({0: 12, 2: 30}, [0, 1, 2]), "u": ({}, [0])}))
    assert offsets == {"t": {"0": 12, "1": -2, "2": 30}, "u": {"0": -2}}
    latest = json.loads(spark_starting_offsets({"t": ({0: 12}, [0, 1])}, from_earliest=False))
    assert latest == {"t": {"0": 12, "1": -1}}


def test_the_checkpoint_is_kept_aside_not_deleted(tmp_path: Path) -> None:
    checkpoint = tmp_path / "stream"
    (checkpoint / "offsets").mkdir(parents=True)
    (checkpoint / "offsets" / "7").write_text("v1")
    aside = set_checkpoint_aside(checkpoint)
    assert aside is not None
    assert not checkpoint.exists()
    assert (aside / "offsets" / "7").read_text() == "v1"
    assert aside.name.startswith("stream.data-loss-")
    assert set_checkpoint_aside(checkpoint) is None


@pytest.mark.parametrize("positions", [{0: 0}, {0: 3, 1: 9}])
def test_nothing_deleted_means_no_gap(positions: dict[int, int]) -> None:
    assert find_gaps(positions, dict.fromkeys(positions, 0)) == []
