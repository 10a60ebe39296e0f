"""A micro-batch's warehouse writes in flight while Spark reads and parses the next batch.

Why: a batch is Spark's stage (the Kafka fetch, the Python workers' parse, the collect to Arrow on the driver) and
then the warehouse writes, and each used to wait for the other, so a batch's cycle was their sum and an event's
freshness up to two such cycles. The write runs on a thread of its own instead (chDB and the server's client let go
of the GIL while a statement runs), and the next batch's Spark stage runs beside it: the cycle becomes about the
longer of the two.

Only while the job is behind (:func:`overlaps`): a batch that took the whole cap leaves a backlog, and the next batch
is there to be read. A job that keeps up waits for its writes inside ``foreachBatch`` as before: measured on two
cores (``rtap bench --repeats 1 --steps 2``, 2026-12-05), overlapping every batch drained a backlog at 0.58 x B3
instead of 0.39, but raised per-event freshness p99 at 10,000 events/s from 0.78 to 1.35 s: a job that keeps up
then cuts more, smaller batches, and the two stages contend for the cores.

Exactness: Spark writes a batch into its commit log when ``foreachBatch`` returns, which is now before that batch's
warehouse writes are done, so after a crash Spark's checkpoint can be one batch ahead of the warehouse. The
warehouse's commit record (``pipeline_batches``, written last by the sink) stays the reference: the checkpoint
folder names the batch whose writes are in flight (:func:`writing`, gone once they committed), and before every
start a batch so named that the warehouse did not commit is taken out of Spark's logs (:func:`rewind`), so that
Spark runs it again with the offsets it recorded for it; the sink's idempotent writes (deduplication tokens
derived from the Kafka records) make that replay exact. Ordering is kept: at most one write is in flight, the next
batch is classified after it committed (with the high-water marks it recorded), and a failed write fails the next
batch, or the query at once when no batch follows (:meth:`InFlightWrite.failure`).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from rtap.errors import PipelineError, first_line
from rtap.stream.checkpoint import COMMITS, OFFSETS, committed_batches, planned_batches

# Spark shares ``maxOffsetsPerTrigger`` out among the partitions by their backlog and rounds each share down, so a
# batch cut from a backlog can be a few records short of the cap (one per partition at most).
BEHIND_SHARE = 0.9


def overlaps(rows: int, cap: int) -> bool:
    """Whether a batch of ``rows`` records may commit in Spark before its writes end: when it took (about) the whole
    cap, Kafka held at least that much, so the job is behind and the next batch is ready. Either answer is exact;
    only the speed differs."""
    return rows >= BEHIND_SHARE * cap


class WriteFailed(PipelineError):
    """A batch's writes failed: the batch that waits for them fails with this (the batch itself, or, after Spark
    moved on, the next one), and the restart runs them again (:func:`rewind`)."""


class InFlightWrite:
    """At most one write, running on a thread of its own.

    A write that failed stays failed (:meth:`wait` raises, :meth:`submit` refuses) until :meth:`settle`, which the
    job calls before the next query start: no later batch may commit while an earlier one is missing.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rtap-write")
        self._pending: Future[None] | None = None
        self._failed: BaseException | None = None
        self._batch_id = -1  # the batch of the write in flight or failed

    def submit(self, batch_id: int, write: Callable[[], None]) -> None:
        """Start ``write``, batch ``batch_id``'s writes; the previous one must have been waited for, and not have
        failed."""
        if self._pending is not None or self._failed is not None:
            raise RuntimeError("a warehouse write is in flight or failed")
        self._batch_id = batch_id
        self._pending = self._pool.submit(write)

    def wait(self) -> None:
        """Until the write in flight (if any) is done; raises :class:`WriteFailed` if it failed."""
        self._finish()
        if self._failed is not None:
            raise WriteFailed(
                f"batch {self._batch_id}'s warehouse write failed: {first_line(self._failed)}"
            ) from self._failed

    def failure(self) -> BaseException | None:
        """The failure of a finished write (None while it runs or if it did not fail), without waiting: lets the
        job stop a query whose last write failed when no new batch comes to find out."""
        pending = self._pending
        if self._failed is None and pending is not None and pending.done():
            return pending.exception()
        return self._failed

    def settle(self) -> BaseException | None:
        """Until the write in flight is done; forget a failure (returned), whose batch the next start runs again."""
        self._finish()
        failed, self._failed = self._failed, None
        return failed

    def _finish(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and (error := pending.exception()) is not None:
            self._failed = error

    def close(self) -> None:
        """Release the thread (after :meth:`settle`)."""
        self._pool.shutdown(wait=True)


# In the checkpoint folder: the batch whose warehouse writes are in flight (gone once they committed).
WRITING = "rtap-writing"


def writing(checkpoint: Path, batch: int) -> None:
    """Record that ``batch``'s writes begin: before Spark can commit it (``foreachBatch`` has not returned)."""
    temporary = checkpoint / f".{WRITING}.tmp"
    temporary.write_text(str(batch))
    temporary.replace(checkpoint / WRITING)


def written(checkpoint: Path) -> None:
    """The batch's writes committed (its ``pipeline_batches`` row is stored)."""
    (checkpoint / WRITING).unlink(missing_ok=True)


def in_flight(checkpoint: Path) -> int | None:
    """The batch whose writes were in flight when the job last stopped (None: none, or an older rtap, whose
    writes ended before Spark's commit)."""
    path = checkpoint / WRITING
    return int(path.read_text()) if path.exists() else None


def rewind(checkpoint: Path, batch: int) -> bool:
    """If Spark committed ``batch`` (a batch whose writes were in flight, and did not commit), make its next run of
    the query in ``checkpoint`` run it again, with the offsets it recorded for it; whether it had. Then forget the
    batch in flight.

    Spark resumes from its two logs: when the newest batch of its offset log is also the newest of its commit log
    it plans a new batch, and when the commit log is one behind it runs that batch again. So ``batch`` leaves the
    commit log, and any batch planned after it the offset log. Only the newest commit can lack its writes: the
    next batch's writes start after the previous batch's committed. When Spark had not committed it, it runs it
    again by itself.
    """
    committed = committed_batches(checkpoint)
    ahead = bool(committed) and committed[-1] == batch
    if ahead:
        (checkpoint / COMMITS / str(batch)).unlink()
        for planned in planned_batches(checkpoint):
            if planned > batch:
                (checkpoint / OFFSETS / str(planned)).unlink()
    written(checkpoint)
    return ahead
