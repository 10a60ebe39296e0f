"""Spark's checkpoint logs as rtap reads them and takes a batch out of (rtap.stream.checkpoint)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rtap.errors import PipelineError
from rtap.stream.checkpoint import planned_batches, planned_offsets, uncommitted_batch, unplan

# The form Spark 4.1 writes offsets/<batch> in (a file of this project's `rtap up`, its metadata shortened).
SPARK_OFFSETS = (
    "v1\n"
    '{"batchWatermarkMs":0,"batchTimestampMs":1796572460761,"conf":{"spark.sql.shuffle.partitions":"2"}}\n'
    '{"clickstream.events":{"0":601,"1":485},"clickstream.browser":{"0":0,"1":7}}'
)


def write_offsets(checkpoint: Path, batch: int, text: str) -> None:
    (checkpoint / "offsets").mkdir(parents=True, exist_ok=True)
    (checkpoint / "offsets" / str(batch)).write_text(text)


def test_the_planned_end_of_each_partition_of_each_topic(tmp_path: Path) -> None:
    write_offsets(tmp_path, 7, SPARK_OFFSETS)
    assert planned_offsets(tmp_path, 7) == {
        ("clickstream.events", 0): 601,
        ("clickstream.events", 1): 485,
        ("clickstream.browser", 0): 0,
        ("clickstream.browser", 1): 7,
    }


@pytest.mark.parametrize(
    "text",
    [None, "v1\n{}", "v1\n{}\n[1, 2]", 'v1\n{}\n{"t": {"zero": 1}}', 'v1\n{}\n{"t": {"0": '],
    ids=["missing", "no source line", "not an object", "not a partition", "cut short"],
)
def test_a_file_not_in_sparks_form_is_one_clear_error(tmp_path: Path, text: str | None) -> None:
    if text is not None:
        write_offsets(tmp_path, 3, text)
    with pytest.raises(PipelineError, match=r"cannot read Spark's planned offsets of batch 3 from .*offsets/3: "):
        planned_offsets(tmp_path, 3)


def offsets_text(**partitions: int) -> str:
    ends = {"clickstream.events": {p.removeprefix("p"): end for p, end in partitions.items()}}
    return "v1\n{}\n" + json.dumps(ends)


def test_unplan_takes_the_newest_uncommitted_batch_out_and_says_what_it_spanned(tmp_path: Path) -> None:
    write_offsets(tmp_path, 4, offsets_text(p0=100, p1=50))
    write_offsets(tmp_path, 5, offsets_text(p0=160, p1=90))
    (tmp_path / "commits").mkdir()
    (tmp_path / "commits" / "4").write_text("v1\n{}")
    assert uncommitted_batch(tmp_path) == 5
    assert unplan(tmp_path, 5) == 100  # 60 + 40 records
    assert planned_batches(tmp_path) == [4]  # Spark plans batch 5 again, from batch 4's end
    assert uncommitted_batch(tmp_path) is None  # every planned batch is committed: nothing to take out


def write_initial(checkpoint: Path, text: str) -> None:
    (checkpoint / "sources" / "0").mkdir(parents=True)
    (checkpoint / "sources" / "0" / "0").write_text(text)


def test_unplan_of_the_first_batch_counts_from_where_the_query_started(tmp_path: Path) -> None:
    write_offsets(tmp_path, 0, offsets_text(p0=100, p1=7))
    # as Spark 4.1 writes it (a file of this project's `rtap up`, shortened to one topic)
    write_initial(tmp_path, '\0v1\n{"clickstream.events":{"0":40,"1":0}}')
    assert uncommitted_batch(tmp_path) == 0
    assert unplan(tmp_path, 0) == 67
    assert planned_batches(tmp_path) == []


@pytest.mark.parametrize("initial", [None, "v1\n", "\0v1\n{not json", '\0v1\n{"clickstream.events":{"0":"x"}}'])
def test_unplan_of_the_first_batch_without_its_start_cannot_say_its_size(tmp_path: Path, initial: str | None) -> None:
    write_offsets(tmp_path, 0, offsets_text(p0=100))
    if initial is not None:
        write_initial(tmp_path, initial)
    assert unplan(tmp_path, 0) is None
    assert planned_batches(tmp_path) == []


def test_unplan_of_a_batch_that_reads_a_new_partition_cannot_say_its_size(tmp_path: Path) -> None:
    write_offsets(tmp_path, 1, offsets_text(p0=100))
    write_offsets(tmp_path, 2, offsets_text(p0=150, p1=30))  # partition 1 added meanwhile
    assert uncommitted_batch(tmp_path) == 2
    assert unplan(tmp_path, 2) is None
    assert planned_batches(tmp_path) == [1]


def test_a_checkpoint_without_batches_has_none_uncommitted(tmp_path: Path) -> None:
    assert uncommitted_batch(tmp_path) is None
    (tmp_path / "offsets").mkdir()  # Spark creates the folder before offsets/0
    assert uncommitted_batch(tmp_path) is None
