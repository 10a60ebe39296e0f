"""The stream job's metrics, recorded from the figures each committed batch writes to ``pipeline_batches``.

Three hooks are all the job calls (``rtap.stream.job`` / ``rtap.stream.sink``), so the job's code stays free of
metric objects:

- :meth:`StreamMetrics.batch_committed` right after a batch's ``pipeline_batches`` row is written, with the
  :class:`~rtap.stream.sink.BatchStats` of that row: the counters advance by exactly the row's numbers, so
  ``rtap_stream_records_accepted_total`` moves with ``sum(valid)`` of ``pipeline_batches`` and never past it;
- :meth:`StreamMetrics.batch_failed` when a batch raises (nothing of it was committed, nothing is counted);
- :meth:`StreamMetrics.job_restarted` when the query restarts from its checkpoint after a failure.

Counters count what this process committed since it started (Prometheus' ``rate``/``increase`` handle the
reset of a restart); the warehouse holds the totals since the beginning.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from rtap.errors import BrokerError, PipelineError, WarehouseError
from rtap.metrics.reasons import REASON_CLASSES, reason_class

if TYPE_CHECKING:
    from rtap.stream.kafka import PartitionLag
    from rtap.stream.sink import BatchStats

log = logging.getLogger("rtap.metrics")

# Micro-batch durations: ~1 s per batch at the default rate, ~12 s for the first one (code generation).
BATCH_DURATION_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
# Per-event freshness: seconds at steady state (bench/results/freshness-10k.md: p99 7.4 s at 10k/s), minutes
# to hours while a backlog drains. 60 s is a bucket bound because it is the alert's default threshold.
FRESHNESS_BUCKETS_S = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 21600.0)
# Why a batch failed, by the rtap error it raised (a bounded label set).
FAILURE_CAUSES = ("warehouse", "kafka", "jvm", "other")


def failure_cause(error: BaseException | None) -> str:
    """``warehouse`` for a ClickHouse write or read, ``kafka`` for the dead-letter topic or the lag probe."""
    if isinstance(error, WarehouseError):
        return "warehouse"
    if isinstance(error, BrokerError):
        return "kafka"
    return "other"


class BulkHistogram(Collector):
    """A histogram fed a whole array at a time: one vectorised bucket count per batch instead of one
    ``Histogram.observe`` call per event (a million events per batch would cost seconds in Python).

    Exposed exactly like ``prometheus_client.Histogram`` (cumulative ``_bucket{le}``, ``_sum``, ``_count``).
    """

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self._name = name
        self._documentation = documentation
        self._bounds = np.asarray(sorted(buckets), dtype=np.float64)
        self._counts = np.zeros(len(self._bounds) + 1, dtype=np.int64)  # the last one is +Inf
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe_many(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        # Bucket i holds values <= bounds[i] that are above bounds[i - 1]: Prometheus' `le` semantics.
        counts = np.bincount(np.searchsorted(self._bounds, values, side="left"), minlength=len(self._counts))
        total = float(values.sum())
        with self._lock:
            self._counts += counts
            self._sum += total

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            cumulative = np.cumsum(self._counts).tolist()
            total = self._sum
        bounds = [*(f"{b:g}" for b in self._bounds.tolist()), "+Inf"]
        family = HistogramMetricFamily(self._name, self._documentation, labels=())
        family.add_metric([], list(zip(bounds, cumulative, strict=True)), total)
        yield family


class StreamMetrics(Collector):
    """Every metric of the stream job; register it in a registry to expose them (``rtap.metrics.endpoint``)."""

    def __init__(self) -> None:
        # registry=None: the objects only record; this collector exposes them, in the registry it is put in.
        def counter(name: str, doc: str, labels: Iterable[str] = ()) -> Counter:
            return Counter(name, doc, labelnames=tuple(labels), registry=None)

        self.batches = counter("rtap_stream_batches", "Micro-batches committed (rows written to pipeline_batches).")
        self.records_read = counter("rtap_stream_records_read", "Kafka records in committed batches (input_rows).")
        self.accepted = counter("rtap_stream_records_accepted", "Records stored in events (pipeline_batches.valid).")
        self.duplicates = counter("rtap_stream_records_duplicate", "Records dropped as copies of a stored event_id.")
        self.late = counter("rtap_stream_records_late", "Records stored in late_events (behind their watermark).")
        self.dead_letters = counter(
            "rtap_stream_dead_letters", "Records stored in dead_letters, by reason class.", ["reason"]
        )
        self.failures = counter(
            "rtap_stream_batch_failures", "Micro-batches that raised and were not committed, by cause.", ["cause"]
        )
        self.restarts = counter(
            "rtap_stream_restarts",
            "Restarts of the streaming query from its checkpoint after a failure; each re-runs the failed "
            "batch, so cause=warehouse counts retries of failed warehouse writes.",
            ["cause"],
        )
        self.gap_records = counter(
            "rtap_stream_data_gap_records", "Records Kafka deleted before they were read, skipped and recorded."
        )
        for reason in REASON_CLASSES:
            self.dead_letters.labels(reason)
        for cause in FAILURE_CAUSES:
            self.failures.labels(cause)
            self.restarts.labels(cause)
        self.batch_duration = Histogram(
            "rtap_stream_batch_duration_seconds",
            "Wall time of a committed micro-batch, from its start to its commit (pipeline_batches.duration_ms).",
            buckets=BATCH_DURATION_BUCKETS_S,
            registry=None,
        )
        self.freshness = BulkHistogram(
            "rtap_stream_event_freshness_seconds",
            "Per accepted event: its commit time minus its event_time (0 for event times in the future).",
            FRESHNESS_BUCKETS_S,
        )
        self.lag = Gauge(
            "rtap_stream_kafka_lag_records",
            "Records of the input topics behind the job, per partition, measured at the last commit.",
            ["topic", "partition"],
            registry=None,
        )
        self.position = Gauge(
            "rtap_stream_committed_offset",
            "Per partition, the offset after the last batch the job committed (Kafka's consumer position).",
            ["topic", "partition"],
            registry=None,
        )
        self.last_batch = Gauge(
            "rtap_stream_last_batch_timestamp_seconds",
            "When the last batch was committed (pipeline_batches.finished_at), Unix time.",
            registry=None,
        )
        self.batch_cap = Gauge(
            "rtap_stream_batch_cap_records",
            "The running query's cap: Kafka records a micro-batch may hold (rtap.stream.caps).",
            registry=None,
        )
        self.last_gap = Gauge(
            "rtap_stream_last_data_gap_timestamp_seconds",
            "When the job last recorded a retention gap in data_gaps, Unix time.",
            registry=None,
        )
        self._committed = False
        self._last_key: tuple[object, ...] | None = None
        self._gap_recorded = False
        self._last_cause = "other"

    # -- hooks ------------------------------------------------------------------------------------

    def batch_committed(
        self,
        stats: BatchStats,
        *,
        event_times: pa.Array | pa.ChunkedArray,
        dead_letter_errors: pa.Array | pa.ChunkedArray,
        kafka_lag: Mapping[tuple[str, int], PartitionLag],
        committed_at: datetime,
    ) -> None:
        """Record one committed batch: ``stats`` is its ``pipeline_batches`` row, ``event_times`` the
        ``event_time`` of its accepted events, ``dead_letter_errors`` the ``error`` of its dead letters,
        ``kafka_lag`` the positions and log ends its ``kafka_lag`` was summed from, ``committed_at`` its
        ``finished_at``. Mismatched arrays are a bug in the caller: refused before
        anything is counted, so the counters never disagree with the row."""
        if len(dead_letter_errors) != stats.dead_letters or len(event_times) != stats.accepted:
            raise PipelineError(
                f"batch {stats.batch_id}: {len(event_times)} event times and {len(dead_letter_errors)} dead-letter "
                f"errors for {stats.accepted} accepted and {stats.dead_letters} dead letters"
            )
        # Spark re-runs a batch whose offsets it did not commit. Its writes, the pipeline_batches row included,
        # are dropped by their deduplication tokens, so counting it again would put the metrics ahead of the
        # table. A replay classifies identically, so its figures equal those of the batch just counted.
        key = (stats.batch_id, stats.input_rows, stats.accepted, stats.duplicates, stats.late, stats.max_event_time)
        if key == self._last_key:
            log.info("metrics: batch %d replayed; already counted", stats.batch_id)
            return
        self._last_key = key
        self.batches.inc()
        self.records_read.inc(stats.input_rows)
        self.accepted.inc(stats.accepted)
        self.duplicates.inc(stats.duplicates)
        self.late.inc(stats.late)
        for error, count in _value_counts(dead_letter_errors):
            self.dead_letters.labels(reason_class(error)).inc(count)
        self.batch_duration.observe(stats.duration_ms / 1000)
        self.freshness.observe_many(freshness_seconds(event_times, committed_at))
        for (topic, partition), lag in kafka_lag.items():
            self.lag.labels(topic, str(partition)).set(lag.records)
            self.position.labels(topic, str(partition)).set(lag.position)
        # At the warehouse's precision (DateTime64(3) keeps whole milliseconds), so it equals finished_at.
        self.last_batch.set(committed_at.replace(microsecond=committed_at.microsecond // 1000 * 1000).timestamp())
        self._committed = True

    def batch_failed(self, error: BaseException) -> None:
        """A batch raised ``error``; it was not committed and Spark will run it again after a restart."""
        self._last_cause = failure_cause(error)
        self.failures.labels(self._last_cause).inc()

    def job_restarted(self, cause: str | None = None) -> None:
        """The query failed (or Spark's JVM died: ``cause="jvm"``) and restarts from its checkpoint, re-running
        the failed batch."""
        self.restarts.labels(cause or self._last_cause).inc()
        self._last_cause = "other"  # a failure outside any batch (e.g. the Kafka source) reports no cause

    def data_gaps_recorded(self, records: int) -> None:
        """The job recorded retention gaps of ``records`` records in ``data_gaps`` and skips them."""
        self.gap_records.inc(records)
        self.last_gap.set(time.time())
        self._gap_recorded = True

    # -- exposition ---------------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        for metric in (
            self.batches,
            self.records_read,
            self.accepted,
            self.duplicates,
            self.late,
            self.dead_letters,
            self.failures,
            self.restarts,
            self.gap_records,
            self.batch_duration,
            self.lag,
            self.position,
            self.batch_cap,
        ):
            yield from metric.collect()
        yield from self.freshness.collect()
        # Absent rather than 0 until something happened: a zero timestamp would read as "stalled since 1970".
        if self._committed:
            yield from self.last_batch.collect()
        if self._gap_recorded:
            yield from self.last_gap.collect()


def freshness_seconds(event_times: pa.Array | pa.ChunkedArray, committed_at: datetime) -> np.ndarray:
    """``committed_at - event_time`` per event in seconds, clamped at 0 (the contract allows event times up
    to ``max_future_skew_s`` ahead of the record; a negative age would make ``_sum`` decrease)."""
    if len(event_times) == 0:
        return np.zeros(0)
    millis = pc.cast(pc.cast(event_times, pa.timestamp("ms", tz="UTC")), pa.int64())
    ages = (committed_at.timestamp() * 1000 - millis.to_numpy(zero_copy_only=False)) / 1000
    return np.asarray(np.maximum(ages, 0.0), dtype=np.float64)


def _value_counts(values: pa.Array | pa.ChunkedArray) -> list[tuple[str | None, int]]:
    if len(values) == 0:
        return []
    counts = pc.value_counts(values)
    return list(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True))


class KafkaEndOffsets(Collector):
    """``rtap_kafka_log_end_offset{topic, partition}``, read from the broker at scrape time: the topic's growth
    even while no batch commits (the stall alert needs exactly that case). A failed read exposes no offsets
    and counts ``rtap_kafka_offset_probe_errors_total``; it never fails the scrape of everything else."""

    def __init__(self, latest_offsets: Callable[[], Mapping[tuple[str, int], int]]) -> None:
        self._latest = latest_offsets
        self._errors = 0
        self._lock = threading.Lock()  # scrapes may overlap; one broker round trip at a time

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            try:
                offsets = dict(self._latest())
            except BrokerError as exc:
                self._errors += 1
                log.warning("metrics: %s", exc)
                offsets = {}
            errors = self._errors
        ends = GaugeMetricFamily(
            "rtap_kafka_log_end_offset",
            "Log-end offset of each input topic partition as the job reads it (read_committed: Kafka's last stable "
            "offset, short of a transaction still open).",
            labels=["topic", "partition"],
        )
        for (topic, partition), offset in sorted(offsets.items()):
            ends.add_metric([topic, str(partition)], offset)
        yield ends
        yield CounterMetricFamily(
            "rtap_kafka_offset_probe_errors", "Scrapes that could not read the input topic's offsets.", value=errors
        )
