"""The outside sender's traffic and its per-event freshness, without a broker.

The sender's counts are the truth the live phase is reconciled against, so the job's own pure stages
(``parse_records`` then ``classify``, what every micro-batch goes through) must make exactly those counts of
what the sender renders; and the freshness query must mean what ``rtap_bench.traffic`` says, on a real chDB.
"""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given
from hypothesis import strategies as st
from rtap_bench.traffic import (
    LATE_BY_S,
    LATE_MARGIN_S,
    Sent,
    Traffic,
    exact_quantile,
    freshness,
    minute_ends,
    offer,
)

from rtap.contract.vocabulary import ACCEPTED, DEAD_LETTER, DUPLICATE, LATE
from rtap.settings import Settings
from rtap.stream.transforms import classify, parse_records
from rtap.warehouse import WarehouseClient, create_client
from rtap.warehouse.migrate import apply_migrations
from tests.support.records import readers

START = datetime(2026, 11, 29, 12, 0, tzinfo=UTC).timestamp()
PARTITIONS = 6


def _as_kafka_records(traffic: Traffic, rate: float) -> pa.RecordBatch:
    """The run as Spark's Kafka source hands it over: keyed partitions, offsets in send order."""
    keys, values, partitions, offsets, times = [], [], [], [], []
    next_offset = [0] * PARTITIONS
    for i in range(traffic.count):
        due = START + i / rate
        key, value = traffic.payload(i, due)
        partition = zlib.crc32(key) % PARTITIONS  # any function of the key: copies share a partition
        keys.append(key)
        values.append(value)
        partitions.append(partition)
        offsets.append(next_offset[partition])
        next_offset[partition] += 1
        times.append(datetime.fromtimestamp(due, UTC))
    return pa.RecordBatch.from_pydict(
        {
            "key": pa.array(keys, pa.binary()),
            "value": pa.array(values, pa.binary()),
            "topic": pa.array(["clickstream.events"] * traffic.count),
            "partition": pa.array(partitions, pa.int32()),
            "offset": pa.array(offsets, pa.int64()),
            "timestamp": pa.array(times, pa.timestamp("us", tz="UTC")),
        }
    )


def test_the_job_classifies_the_sent_traffic_exactly_as_the_sender_counted_it() -> None:
    rate, seconds = 1_000.0, 20.0
    traffic = Traffic(int(rate * seconds), "unit", seed=7)
    chosen = readers(max_record_bytes=65_536, max_future_skew_s=3_600)
    parsed = pa.Table.from_batches([parse_records(_as_kafka_records(traffic, rate), chosen, max_raw_bytes=65_536)])
    classified = classify(parsed, high_water={}, watermark_delay_s=30.0)
    statuses = dict(zip(*pc.value_counts(classified["status"]).flatten(), strict=True))
    # Every kind of dirt is present, and each lands where the sender said it would.
    assert min(traffic.duplicates, traffic.malformed, traffic.late) > 0
    assert {str(k): int(v) for k, v in statuses.items()} == {
        ACCEPTED: traffic.valid,
        DUPLICATE: traffic.duplicates,
        LATE: traffic.late,
        DEAD_LETTER: traffic.malformed,
    }
    accepted = classified.filter(pc.equal(classified["status"], ACCEPTED))
    assert len(pc.unique(accepted["session_id"])) == traffic.sessions
    assert traffic.valid + traffic.duplicates + traffic.late + traffic.malformed == traffic.count


def test_payloads_carry_unique_uuids_the_due_time_and_two_minutes_for_late_ones() -> None:
    traffic = Traffic(5_000, "unit", seed=3)
    ids: set[str] = set()
    late_seen = copies = 0
    for i in range(traffic.count):
        due = START + i / 1_000
        _, value = traffic.payload(i, due)
        try:
            event = json.loads(value)
        except ValueError:
            continue  # truncated
        event_id = str(uuid.UUID(event["event_id"]))
        if event_id in ids:
            copies += 1  # an exact re-send: an earlier event's bytes and time
            continue
        ids.add(event_id)
        # The due time to the nearest millisecond; a late event LATE_BY_S before it.
        behind = due - datetime.fromisoformat(event["event_time"]).timestamp()
        if behind > 1:
            late_seen += 1
            behind -= LATE_BY_S
        assert abs(behind) <= 0.0005 + 1e-6
    assert late_seen == traffic.late
    assert copies == traffic.duplicates
    assert len(ids) == traffic.count - traffic.malformed - traffic.duplicates


def _kinds(traffic: Traffic, rate: float) -> list[tuple[bytes, str]]:
    """(session key, what the job makes of it) of every send, read back from the payloads."""
    kinds: list[tuple[bytes, str]] = []
    seen: set[str] = set()
    for i in range(traffic.count):
        due = START + i / rate
        key, value = traffic.payload(i, due)
        try:
            event = json.loads(value)
        except ValueError:
            kinds.append((key, DEAD_LETTER))
            continue
        if event["event_id"] in seen:
            kinds.append((key, DUPLICATE))
            continue
        seen.add(event["event_id"])
        late = due - datetime.fromisoformat(event["event_time"]).timestamp() > 1
        kinds.append((key, LATE if late else ACCEPTED))
    return kinds


def test_a_late_event_follows_an_on_time_event_of_its_session_within_the_window() -> None:
    # 40 sends a second for 100 s, a window of 5 s (200 sends): a session's last on-time event before each late
    # one is always fewer than 200 sends back, so its partition's mark is that recent however long the run.
    rate, window = 40.0, 200
    traffic = Traffic(4_000, "unit", seed=5, late_within=window)
    last: dict[bytes, int] = {}
    gaps = []
    for i, (session, kind) in enumerate(_kinds(traffic, rate)):
        if kind == LATE:
            gaps.append(i - last[session])
        elif kind == ACCEPTED:
            last[session] = i
    assert len(gaps) == traffic.late > 0
    assert max(gaps) < window


def test_a_run_shorter_than_the_window_is_the_same_run_as_without_one() -> None:
    short = _kinds(Traffic(5_000, "unit", seed=9, late_within=5_000), 1_000)
    assert short == _kinds(Traffic(5_000, "unit", seed=9), 1_000)


def test_a_watermark_delay_that_makes_late_events_on_time_is_refused() -> None:
    with pytest.raises(ValueError, match="are on time"):
        offer("127.0.0.1:1", "t", 1_000, seconds=20, run="r", seed=0, watermark_delay_s=LATE_BY_S - LATE_MARGIN_S)


def test_the_senders_minutes_start_at_the_first_send_due_in_them() -> None:
    ends = minute_ends(1_000.0)
    assert [next(ends) for _ in range(3)] == [60_000, 120_000, 180_000]
    thirds = minute_ends(1 / 7)  # a send every 7 s: 0, 7, ..., 56 in the first minute; 63 opens the second
    assert [next(thirds) for _ in range(2)] == [9, 18]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WarehouseClient]:
    settings = Settings(data_dir=Path(tmp_path_factory.mktemp("traffic")))
    with create_client(settings) as client:
        apply_migrations(client)
        yield client


def _ms(epoch_s: float) -> str:
    return f"fromUnixTimestamp64Milli({round(epoch_s * 1000)})"


def _sent(started: float, ended: float) -> Sent:
    return Sent(100.0, ended - started, 0, 0, 0, 0, 0, 0, 0, started, ended, 0.0)


def test_freshness_is_the_commit_time_of_each_events_batch_minus_its_event_time(warehouse: WarehouseClient) -> None:
    # 100 events of run "fr", one per 10 ms; batch 1 (the first 50) commits at +2 s, batch 2 at +3 s:
    # freshness 2.00 .. 1.51 s and 2.50 .. 2.01 s. Another run's event in the same batch is not counted.
    rows = []
    for i in range(100):
        batch = 1 if i < 50 else 2
        rows.append(f"('{uuid.uuid4()}', {_ms(START + i / 100)}, 'fr-u{i}', {batch}, now64())")
    rows.append(f"('{uuid.uuid4()}', {_ms(START)}, 'other-u1', 1, now64())")
    # ingested_at: the events' TTL counts from it.
    columns = "event_id, event_time, user_id, batch_id, ingested_at"
    warehouse.command(f"INSERT INTO {{db}}.events ({columns}) VALUES {', '.join(rows)}")
    warehouse.command(
        "INSERT INTO {db}.pipeline_batches (query_id, batch_id, started_at, finished_at) VALUES "
        f"('q', 1, {_ms(START)}, {_ms(START + 2)}), ('q', 2, {_ms(START)}, {_ms(START + 3)})"
    )
    fresh = freshness(warehouse, "fr", _sent(START, START + 1.0))
    values = sorted([2.0 - i / 100 for i in range(50)] + [3.0 - i / 100 for i in range(50, 100)])
    assert fresh["events"] == 100
    # Linear between closest ranks, as numpy's default: rank 0.99 * 99 = 98.01 of the sorted values.
    assert fresh["p99_s"] == pytest.approx(values[98] + 0.01 * (values[99] - values[98]))
    assert fresh["p50_s"] == pytest.approx((values[49] + values[50]) / 2)
    assert fresh["max_s"] == pytest.approx(2.5)
    assert fresh["stored_after_end_s"] == pytest.approx(2.0)
    assert freshness(warehouse, "nobody", _sent(START, START + 1.0))["events"] == 0


@given(
    st.lists(st.integers(min_value=-5_000, max_value=60_000), min_size=1, max_size=300),
    st.sampled_from([0.0, 0.01, 0.5, 0.99, 1.0]),
)
def test_a_quantile_from_counted_values_is_the_quantile_of_the_values(values: list[int], q: float) -> None:
    """Freshness is read as counts per millisecond value (bounded memory); its quantiles must be those of the
    values themselves, linear between the closest ranks as numpy's default."""
    distinct = sorted(set(values))
    counts = [values.count(v) for v in distinct]
    assert exact_quantile(distinct, counts, q) == pytest.approx(float(np.quantile(values, q)))
