"""Spark's checkpoint logs as rtap reads them: a file per micro-batch, named by its number, in ``offsets`` (the
batches Spark planned, with their Kafka ranges) and ``commits`` (the batches it finished).

The job decides where to start from them (rtap.stream.job) and where each batch ends (:func:`planned_offsets`),
the overlap takes a batch out of them (rtap.stream.overlap.rewind), and a backup checks them against the warehouse
(rtap.ops.backup).
"""

from __future__ import annotations

import json
from pathlib import Path

from rtap.errors import PipelineError

OFFSETS = "offsets"
COMMITS = "commits"


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


def planned_offsets(checkpoint: Path, batch: int) -> dict[tuple[str, int], int]:
    """Where Spark's Kafka source planned ``batch`` to end, per (topic, partition): the offset after its range.

    Its ``offsets/<batch>`` file holds a version line, the batch's metadata, then the source's offsets as
    ``{"topic": {"partition": offset}}``; Spark writes it before it runs the batch. The end is past anything the
    batch's records cannot show: a transactional producer's commit and abort markers and aborted records, which
    take offsets but are never read. A file not in that form raises :class:`PipelineError`.
    """
    path = checkpoint / OFFSETS / str(batch)
    try:
        lines = path.read_text().splitlines()
        return {
            (topic, int(partition)): int(offset)
            for topic, partitions in json.loads(lines[2]).items()
            for partition, offset in partitions.items()
        }
    except (OSError, IndexError, ValueError, AttributeError) as exc:
        raise PipelineError(f"cannot read Spark's planned offsets of batch {batch} from {path}: {exc}") from exc
