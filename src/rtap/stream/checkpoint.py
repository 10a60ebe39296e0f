"""Spark's checkpoint logs as rtap reads them: a file per micro-batch, named by its number, in ``offsets`` (the
batches Spark planned, with their Kafka ranges) and ``commits`` (the batches it finished).

The job decides where to start from them (rtap.stream.job), the overlap takes a batch out of them
(rtap.stream.overlap.rewind), and a backup checks them against the warehouse (rtap.ops.backup).
"""

from __future__ import annotations

from pathlib import Path

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
