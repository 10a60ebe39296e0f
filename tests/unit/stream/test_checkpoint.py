"""Spark's checkpoint logs as rtap reads them (rtap.stream.checkpoint)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtap.errors import PipelineError
from rtap.stream.checkpoint import planned_offsets

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
