"""The stream job's metrics: exactly the committed figures, replays not counted twice, bounded labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from rtap.errors import BrokerError, PipelineError, RetryableWarehouseError
from rtap.metrics import KafkaEndOffsets, StreamMetrics
from rtap.metrics.stream import FRESHNESS_BUCKETS_S
from rtap.stream.kafka import PartitionLag
from rtap.stream.sink import BatchStats

COMMITTED = datetime(2026, 12, 1, 12, 0, 10, tzinfo=UTC)


def registry_of(*collectors: object) -> CollectorRegistry:
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)  # type: ignore[arg-type]
    return registry


def stats(batch_id: int = 0, *, accepted: int = 3, dead_letters: int = 2, **changes: object) -> BatchStats:
    values: dict[str, object] = {
        "batch_id": batch_id,
        "input_rows": accepted + dead_letters + 2,
        "accepted": accepted,
        "duplicates": 1,
        "late": 1,
        "dead_letters": dead_letters,
        "duration_ms": 1500,
        "max_event_time": COMMITTED - timedelta(seconds=1),
        "kafka_lag": 7,
    }
    values.update(changes)
    return BatchStats(**values)  # type: ignore[arg-type]


def times(*seconds_before_commit: float) -> pa.Array:
    return pa.array([COMMITTED - timedelta(seconds=s) for s in seconds_before_commit], pa.timestamp("ms", tz="UTC"))


def commit(metrics: StreamMetrics, batch: BatchStats, event_times: pa.Array, errors: list[str]) -> None:
    metrics.batch_committed(
        batch,
        event_times=event_times,
        dead_letter_errors=pa.array(errors, pa.string()),
        kafka_lag={("t", 0): PartitionLag(10, 14), ("t", 1): PartitionLag(20, 23)},
        committed_at=COMMITTED,
    )


def test_counters_advance_by_the_committed_row() -> None:
    metrics = StreamMetrics()
    registry = registry_of(metrics)
    assert registry.get_sample_value("rtap_stream_last_batch_timestamp_seconds") is None  # not 1970
    commit(metrics, stats(0), times(0.4, 3, 90), ["invalid JSON", "price: below 0"])
    commit(metrics, stats(1, accepted=1, dead_letters=1), times(-5), ["invalid JSON"])

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("rtap_stream_batches_total") == 2
    assert value("rtap_stream_records_read_total") == 7 + 4
    assert value("rtap_stream_records_accepted_total") == 4
    assert value("rtap_stream_records_duplicate_total") == 2
    assert value("rtap_stream_records_late_total") == 2
    assert value("rtap_stream_dead_letters_total", reason="invalid_json") == 2
    assert value("rtap_stream_dead_letters_total", reason="out_of_range") == 1
    assert value("rtap_stream_dead_letters_total", reason="too_large") == 0  # every class exists from the start
    assert value("rtap_stream_batch_duration_seconds_count") == 2
    assert value("rtap_stream_batch_duration_seconds_sum") == 3.0
    assert value("rtap_stream_kafka_lag_records", topic="t", partition="0") == 4
    assert value("rtap_stream_committed_offset", topic="t", partition="1") == 20
    assert value("rtap_stream_last_batch_timestamp_seconds") == COMMITTED.timestamp()
    # Freshness per event: 0.4 s, 3 s, 90 s, and an event 5 s in the future counted as 0.
    assert value("rtap_stream_event_freshness_seconds_count") == 4
    assert value("rtap_stream_event_freshness_seconds_sum") == pytest.approx(93.4)
    assert value("rtap_stream_event_freshness_seconds_bucket", le="0.5") == 2
    assert value("rtap_stream_event_freshness_seconds_bucket", le="5") == 3
    assert value("rtap_stream_event_freshness_seconds_bucket", le="60") == 3
    assert value("rtap_stream_event_freshness_seconds_bucket", le="120") == 4
    assert value("rtap_stream_event_freshness_seconds_bucket", le="+Inf") == 4


def test_a_replayed_batch_is_not_counted_again() -> None:
    metrics = StreamMetrics()
    registry = registry_of(metrics)
    commit(metrics, stats(0), times(1, 2, 3), ["invalid JSON", "invalid JSON"])
    commit(metrics, stats(0, duration_ms=900), times(1, 2, 3), ["invalid JSON", "invalid JSON"])
    assert registry.get_sample_value("rtap_stream_batches_total") == 1
    assert registry.get_sample_value("rtap_stream_records_accepted_total") == 3
    # A new checkpoint starts at batch 0 again, with other records: counted.
    commit(metrics, stats(0, accepted=1, dead_letters=0), times(1), [])
    assert registry.get_sample_value("rtap_stream_batches_total") == 2


def test_arrays_that_disagree_with_the_row_are_refused_before_anything_is_counted() -> None:
    metrics = StreamMetrics()
    registry = registry_of(metrics)
    with pytest.raises(PipelineError, match="2 event times"):
        commit(metrics, stats(0), times(1, 2), ["invalid JSON", "invalid JSON"])
    assert registry.get_sample_value("rtap_stream_batches_total") == 0


def test_failures_and_restarts_carry_the_cause() -> None:
    metrics = StreamMetrics()
    registry = registry_of(metrics)
    metrics.batch_failed(RetryableWarehouseError("too many parts"))
    metrics.job_restarted()
    metrics.batch_failed(BrokerError("dead-letter publish failed"))
    metrics.job_restarted()
    metrics.job_restarted()  # the Kafka source failed: no batch reported a cause

    def value(name: str, cause: str) -> float | None:
        return registry.get_sample_value(name, {"cause": cause})

    assert value("rtap_stream_batch_failures_total", "warehouse") == 1
    assert value("rtap_stream_batch_failures_total", "kafka") == 1
    assert value("rtap_stream_restarts_total", "warehouse") == 1
    assert value("rtap_stream_restarts_total", "kafka") == 1
    assert value("rtap_stream_restarts_total", "other") == 1


def test_data_gaps_set_the_gap_time() -> None:
    metrics = StreamMetrics()
    registry = registry_of(metrics)
    assert registry.get_sample_value("rtap_stream_last_data_gap_timestamp_seconds") is None
    metrics.data_gaps_recorded(120)
    assert registry.get_sample_value("rtap_stream_data_gap_records_total") == 120
    assert registry.get_sample_value("rtap_stream_last_data_gap_timestamp_seconds") == pytest.approx(
        datetime.now(UTC).timestamp(), abs=5
    )


def test_freshness_buckets_include_the_alert_threshold() -> None:
    from rtap.settings import AlertSettings

    assert AlertSettings().freshness_p99_s in FRESHNESS_BUCKETS_S


def test_topic_end_offsets_are_read_at_scrape_time_and_a_failure_is_counted() -> None:
    answers: list[dict[tuple[str, int], int] | Exception] = [
        {("t", 0): 10, ("t", 1): 20},
        BrokerError("broker down"),
        {("t", 0): 15, ("t", 1): 20},
    ]

    def latest() -> dict[tuple[str, int], int]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    registry = registry_of(KafkaEndOffsets(latest))
    first = registry.get_sample_value("rtap_kafka_log_end_offset", {"topic": "t", "partition": "1"})
    assert first == 20
    text = generate_latest(registry).decode()
    assert "rtap_kafka_log_end_offset{" not in text  # the broker did not answer: no stale offsets
    assert "rtap_kafka_offset_probe_errors_total 1.0" in text
    assert registry.get_sample_value("rtap_kafka_log_end_offset", {"topic": "t", "partition": "0"}) == 15
