"""How many records a micro-batch may hold, and when the job starts its query again to change that.

Spark's Kafka source plans each batch by a count of offsets (``maxOffsetsPerTrigger``), fixed when a query starts,
and knows nothing of the records' sizes, while the driver collects a whole batch. So the job divides
``max_batch_bytes`` by the bytes per record of its last committed batches (:func:`batch_cap`), and
:class:`BatchCaps` keeps that true while the job runs:

- Record sizes change under a running query. Every :data:`RECHECK_S` the job asks for the cap the last batches'
  sizes give, and starts the query again (its Spark JVM stays) when it differs from the running one by
  :data:`RATIO` or more either way: a cap that stays 4 x too small leaves the job unable to keep up, and one 4 x
  too large brings that much more into the driver.
- A batch planned before its records' size was known can be too large for the driver. Measured here: 60,000
  valid contract-v1 events of 40 KB each (every string at its maxLength), read as one backlog by a 1 GiB driver,
  ended every attempt with an OutOfMemoryError in a task (Spark's exit code 52), five in a row, and the job
  stopped; Spark replays the range it planned, however often. After a failure for want of memory the job takes
  that batch out of Spark's offset log (rtap.stream.checkpoint.unplan) and plans it again at most
  1/:data:`SHRINK` as large (:meth:`BatchCaps.out_of_memory`), until a batch fits: down to one record a
  partition (Spark gives each partition with a backlog at least one), so that no valid input can stop the job.
  The first batch that fits turns the smaller cap into a smaller budget of bytes (:meth:`BatchCaps.committed`):
  the driver holds no more than that, so the cap follows record sizes within it from then on, and records as
  small as before get a cap as large as before, or nearly (a job that keeps up is not held back by large records
  long gone).

A restart of the query is exact like any other (the sink's writes are idempotent, a batch cut at other offsets
skips what an earlier attempt stored); only its second or two are lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rtap.settings import StreamSettings
from rtap.warehouse import WarehouseClient

# Until the job has committed batches that say otherwise: a generous guess of a record's size.
DEFAULT_RECORD_BYTES = 1024
# The last RECENT_BATCHES batches of this pipeline that read records, among the last SIZE_LOOKBACK batch ids: a
# range of pipeline_batches' key (query_id, batch_id), so that the check every RECHECK_S reads a few granules
# however many batches the table keeps (a row per batch for 90 days).
RECENT_BATCHES = 20
SIZE_LOOKBACK = 200
_RECENT_RECORD_BYTES = """
SELECT sum(input_bytes), sum(input_rows) FROM (
    SELECT input_bytes, input_rows FROM {db}.pipeline_batches FINAL
    WHERE query_id = {query_id:String} AND batch_id BETWEEN {first:Int64} AND {last:Int64} AND input_bytes > 0
    ORDER BY batch_id DESC LIMIT {batches:UInt32}
)
"""
# How often the running query's cap is held against the last batches' record sizes, and how far apart the two
# must be for the query to start again (a restart costs a second or two of freshness, so not for small changes).
RECHECK_S = 30.0
RATIO = 4
# After a batch ran out of memory, the next plans at most this fraction of it: from the default 200,000 records,
# 50,000, 12,500, 3,125... (measured, 60,000 40-KB records fit a 1 GiB driver at 936 and not at 3,744: halving
# would have failed five times in a row on the way, and the job stops at five).
SHRINK = 4


def batch_cap(stream: StreamSettings, bytes_per_record: float, *, max_bytes: int | None = None) -> int:
    """Records per micro-batch: ``max_batch_records``, or fewer where records are large (``max_bytes``, by default
    ``max_batch_bytes``)."""
    by_bytes = int((max_bytes or stream.max_batch_bytes) // max(1.0, bytes_per_record))
    return max(1, min(stream.max_batch_records, by_bytes))


def recent_record_bytes(client: WarehouseClient, query_id: str, last_batch: int | None) -> float:
    """Bytes per record over the last batches of pipeline ``query_id`` up to ``last_batch`` (Spark's last commit)
    that recorded their size; :data:`DEFAULT_RECORD_BYTES` before any."""
    if last_batch is None:
        return float(DEFAULT_RECORD_BYTES)
    parameters = {
        "query_id": query_id,
        "first": last_batch - SIZE_LOOKBACK,
        "last": last_batch + 1,  # the warehouse can be one batch ahead of Spark's commit log (rtap.stream.overlap)
        "batches": RECENT_BATCHES,
    }
    total_bytes, rows = client.query_rows(_RECENT_RECORD_BYTES, parameters=parameters)[0]
    return float(total_bytes) / float(rows) if rows else float(DEFAULT_RECORD_BYTES)


@dataclass
class BatchCaps:
    """The cap of the running query, the limit a failure for want of memory set, and whether to start again.

    ``budget`` is the bytes a batch may bring into the driver: ``max_batch_bytes``, until a batch ran it out of
    memory. Then ``limit`` (records) holds until the first batch under it commits, whose records' size turns it
    into a budget in bytes (that size x the limit) for the rest of the job's life: it is a fact about the driver, not
    about those records, so once they are gone the cap follows record sizes again within it.

    ``committed`` is called from the thread that writes batches, the rest from the job's, and never beside a
    ``committed`` except :meth:`restart_with`, which at worst sees the limit one check late.
    """

    stream: StreamSettings
    current: int
    limit: int | None = None
    budget: int = field(init=False)

    def __post_init__(self) -> None:
        self.budget = self.stream.max_batch_bytes

    def _by_size(self, bytes_per_record: float) -> int:
        return batch_cap(self.stream, bytes_per_record, max_bytes=self.budget)

    def for_query(self, bytes_per_record: float) -> int:
        """The cap of a query starting now: by the record sizes, within the limit if one holds."""
        cap = self._by_size(bytes_per_record)
        self.current = cap if self.limit is None else min(cap, self.limit)
        return self.current

    @property
    def can_shrink(self) -> bool:
        return self.current > 1

    def out_of_memory(self, records: int | None) -> int:
        """A batch of ``records`` (None: not known, the cap's) ran out of memory: the limit of the next queries,
        1/:data:`SHRINK` of it."""
        failed = self.current if records is None else min(records, self.current)
        self.limit = max(1, failed // SHRINK)
        return self.limit

    def committed(self, rows: int, size: int) -> None:
        """A batch of ``rows`` records and ``size`` bytes committed: under a limit, the budget its records give."""
        if self.limit is not None and rows > 0 and size > 0:
            self.budget = min(self.budget, max(1, self.limit * size // rows))
            self.limit = None

    def restart_with(self, bytes_per_record: float) -> int | None:
        """The cap to start the query again with now, if any: one :data:`RATIO` x smaller or larger than the running
        query's (under a limit not yet turned into a budget, only smaller)."""
        wanted = self._by_size(bytes_per_record)
        if wanted * RATIO <= self.current:
            return wanted
        if self.limit is None and wanted >= self.current * RATIO:
            return wanted
        return None
