"""A batch's writes beside the next batch's Spark stage, and the checkpoint held to the warehouse
(``rtap.stream.overlap``)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from rtap.stream.checkpoint import COMMITS, OFFSETS
from rtap.stream.overlap import (
    InFlightWrite,
    WriteFailed,
    in_flight,
    rewind,
    writing,
    written,
)


def checkpoint(tmp_path: Path, *, offsets: range, commits: range) -> Path:
    """Spark's two logs as it writes them: a file per batch, named by its number (and the files beside them)."""
    folder = tmp_path / "stream"
    for log, batches in ((OFFSETS, offsets), (COMMITS, commits)):
        (folder / log).mkdir(parents=True)
        for batch in batches:
            (folder / log / str(batch)).write_text(f"v1\n{batch}")
    (folder / "metadata").write_text("{}")
    return folder


def batches(folder: Path, log: str) -> list[int]:
    return sorted(int(p.name) for p in (folder / log).iterdir())


def test_a_batch_spark_committed_while_its_writes_were_in_flight_runs_again_with_its_offsets(tmp_path: Path) -> None:
    """Spark committed 4 and planned 5 while batch 4's writes were in flight: it must find 4 planned and not
    committed, so that it runs 4 again from its recorded offsets."""
    folder = checkpoint(tmp_path, offsets=range(6), commits=range(5))
    writing(folder, 4)
    assert in_flight(folder) == 4
    assert rewind(folder, 4)
    assert batches(folder, COMMITS) == [0, 1, 2, 3]
    assert batches(folder, OFFSETS) == [0, 1, 2, 3, 4]
    assert (folder / OFFSETS / "4").read_text() == "v1\n4"  # the batch's own offsets, untouched
    assert (folder / "metadata").exists()
    assert in_flight(folder) is None


def test_a_pipelines_first_batch_runs_again_like_any_other(tmp_path: Path) -> None:
    folder = checkpoint(tmp_path, offsets=range(2), commits=range(1))
    writing(folder, 0)
    assert rewind(folder, 0)
    assert batches(folder, COMMITS) == []
    assert batches(folder, OFFSETS) == [0]


def test_a_batch_spark_did_not_commit_is_left_to_spark(tmp_path: Path) -> None:
    """The job stopped before foreachBatch returned: Spark runs the batch again by itself."""
    folder = checkpoint(tmp_path, offsets=range(5), commits=range(4))
    writing(folder, 4)
    assert not rewind(folder, 4)
    assert batches(folder, COMMITS) == [0, 1, 2, 3]
    assert batches(folder, OFFSETS) == [0, 1, 2, 3, 4]
    assert in_flight(folder) is None


def test_writes_that_committed_leave_nothing_in_flight(tmp_path: Path) -> None:
    """Nothing to rewind after committed writes, even when the warehouse no longer has the batch's row (its
    retention expired while the job was idle)."""
    folder = checkpoint(tmp_path, offsets=range(5), commits=range(5))
    writing(folder, 4)
    written(folder)
    assert in_flight(folder) is None
    assert batches(folder, COMMITS) == [0, 1, 2, 3, 4]


def test_a_write_runs_beside_its_caller_and_its_outcome_is_taken_by_wait() -> None:
    writes = InFlightWrite()
    started, release = threading.Event(), threading.Event()
    done: list[str] = []

    def write() -> None:
        started.set()
        assert release.wait(10)
        done.append(threading.current_thread().name)

    writes.submit(4, write)
    assert started.wait(10)  # running while this thread goes on (the next batch's Spark stage)
    assert writes.failure() is None
    with pytest.raises(RuntimeError, match="in flight"):
        writes.submit(4, write)  # at most one
    release.set()
    writes.wait()
    assert len(done) == 1
    assert done[0].startswith("rtap-write")
    writes.submit(5, lambda: None)  # the next one
    writes.wait()
    writes.close()


def test_a_failed_write_fails_every_later_batch_until_the_restart_settles_it() -> None:
    writes = InFlightWrite()
    error = OSError("chDB: Code: 243. DB::Exception: Cannot reserve 1.00 MiB, not enough space")

    def write() -> None:
        raise error

    writes.submit(4, write)
    writes._pending.exception(timeout=10)  # type: ignore[union-attr]  # finished, not waited for
    assert writes.failure() is error  # what the job's watch finds when no new batch comes
    for _ in range(2):  # sticky: no later batch may commit while this one is missing
        with pytest.raises(WriteFailed, match="batch 4's warehouse write failed: chDB: Code: 243"):
            writes.wait()
    with pytest.raises(RuntimeError, match="failed"):
        writes.submit(5, lambda: None)
    assert writes.settle() is error  # before the next start, which runs the batch again
    assert writes.failure() is None
    writes.submit(5, lambda: None)
    writes.wait()
    writes.close()
