"""Spark's checkpoint logs as rtap reads them: a file per micro-batch, named by its number, in ``offsets`` (the
batches Spark planned, with their Kafka ranges) and ``commits`` (the batches it finished).

The job decides where to start from them (rtap.stream.job) and where each batch ends (:func:`planned_offsets`),
the overlap takes a batch out of them (rtap.stream.overlap.rewind), so does a batch too large for the driver
(:func:`unplan`), and a backup checks them against the warehouse (rtap.ops.backup).
"""

from __future__ import annotations

import json
from pathlib import Path

from rtap.errors import PipelineError

OFFSETS = "offsets"
COMMITS = "commits"
SOURCES = "sources"


def _logged(folder: Path) -> list[int]:
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.is_dir() else []


def planned_batches(checkpoint: Path) -> list[int]:
    """The micro-batches Spark planned in ``checkpoint`` (its ``offsets/<batch>`` files).

    Spark creates the ``offsets`` folder before it writes ``offsets/0``: a first attempt that failed before
    planning a batch leaves the folder empty, and then the warehouse, not ``startingOffsets``, says where to
    resume.
    """
    return _logged(checkpoint / OFFSETS)


def committed_batches(checkpoint: Path) -> list[int]:
    """The micro-batches Spark committed in ``checkpoint`` (its ``commits/<batch>`` files)."""
    return _logged(checkpoint / COMMITS)


def _source_offsets(line: str) -> dict[tuple[str, int], int]:
    """The Kafka source's offsets as Spark writes them on one line, ``{"topic": {"partition": offset}}``."""
    return {
        (topic, int(partition)): int(offset)
        for topic, partitions in json.loads(line).items()
        for partition, offset in partitions.items()
    }


def planned_offsets(checkpoint: Path, batch: int) -> dict[tuple[str, int], int]:
    """Where Spark's Kafka source planned ``batch`` to end, per (topic, partition): the offset after its range.

    Its ``offsets/<batch>`` file holds a version line, the batch's metadata, then the source's offsets as
    ``{"topic": {"partition": offset}}``; Spark writes it before it runs the batch. The end is past anything the
    batch's records cannot show: a transactional producer's commit and abort markers and aborted records, which
    take offsets but are never read. A file not in that form raises :class:`PipelineError`.
    """
    path = checkpoint / OFFSETS / str(batch)
    try:
        return _source_offsets(path.read_text().splitlines()[2])
    except (OSError, IndexError, ValueError, AttributeError) as exc:
        raise PipelineError(f"cannot read Spark's planned offsets of batch {batch} from {path}: {exc}") from exc


def initial_offsets(checkpoint: Path) -> dict[tuple[str, int], int] | None:
    """Where Spark's Kafka source started the query in ``checkpoint`` (batch 0's start), per (topic, partition);
    None when it is not there or not in the form Spark 4.1 writes (``sources/0/0``: a NUL byte, a version line,
    then the offsets it resolved ``startingOffsets`` to)."""
    try:
        return _source_offsets((checkpoint / SOURCES / "0" / "0").read_text().lstrip("\0").splitlines()[1])
    except (OSError, IndexError, ValueError, AttributeError):
        return None


def uncommitted_batch(checkpoint: Path) -> int | None:
    """The newest batch Spark planned and did not commit in ``checkpoint``, if any."""
    planned, committed = planned_batches(checkpoint), committed_batches(checkpoint)
    if not planned or (committed and committed[-1] >= planned[-1]):
        return None
    return planned[-1]


def unplan(checkpoint: Path, batch: int) -> int | None:
    """Take ``batch``, the newest Spark planned and did not commit (:func:`uncommitted_batch`), out of its offset
    log, so that the next query plans it again from the previous batch's end with its own cap (rtap.stream.caps: a
    batch that ran out of memory). Returns the offsets it spanned, or None if its start is not known.

    Spark resumes from its two logs: with the newest planned batch also the newest committed, it plans a new one.
    The records a first attempt stored are skipped by the next (rtap.stream.sink), however the batch is cut.
    """
    end = planned_offsets(checkpoint, batch)
    previous = batch - 1 in planned_batches(checkpoint)
    start = planned_offsets(checkpoint, batch - 1) if previous else initial_offsets(checkpoint) or {}
    spanned = sum(offset - start[key] for key, offset in end.items()) if start.keys() >= end.keys() else None
    (checkpoint / OFFSETS / str(batch)).unlink()
    return spanned
