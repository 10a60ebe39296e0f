"""The sink on the real embedded ClickHouse: exact tables, replays change nothing, copies across batches count."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from rtap.errors import BrokerError, RtapError
from rtap.settings import Settings
from rtap.stream.identity import RECORDED_TOPIC_IDS
from rtap.stream.kafka import PartitionLag
from rtap.stream.sink import FINALS_MINUTES, WarehouseSink
from rtap.warehouse import WarehouseClient, create_client
from rtap.warehouse.migrate import apply_migrations
from tests.support.records import TOPIC, classify_records, event


class RecordingPublisher:
    """Stands in for the DLQ topic (our own interface, not Kafka's): keeps what would be published, and acknowledges
    it unless told to fail as a broker would."""

    def __init__(self, *, fails: bool = False) -> None:
        self.published: list[pa.Table] = []
        self.fails = fails

    def publish(self, rows: pa.Table) -> None:
        self.published.append(rows)

    def delivered(self) -> None:
        if self.fails:
            raise BrokerError("dead-letter publish to clickstream.events.dlq failed: 1 undelivered, 0 errors (timeout)")


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WarehouseClient]:
    settings = Settings(data_dir=Path(tmp_path_factory.mktemp("sink")))
    with create_client(settings) as client:
        apply_migrations(client)
        yield client


def run_batch(sink: WarehouseSink, batch_id: int, records: list) -> None:
    marks = sink.high_water(batch_id)
    classified = classify_records(records, marks, max_record_bytes=65536)
    sink.write(batch_id, classified, datetime.now(UTC), marks)


def scalar(client: WarehouseClient, sql: str) -> object:
    return client.query_rows(sql)[0][0]


def test_batches_are_exact_and_replays_change_nothing(warehouse) -> None:
    publisher = RecordingPublisher()
    sink = WarehouseSink(warehouse, Settings().stream, "pipeline-a", publisher, lambda offsets: {}, topic=TOPIC)
    purchase = event(
        3, "2026-11-29T12:00:20Z", event_type="purchase", product_id="p", price=2.5, quantity=2, order_id="o"
    )
    batch0 = [
        (0, 0, event(1, "2026-11-29T12:00:01Z", user_id="a")),
        (0, 1, event(2, "2026-11-29T12:00:02Z", user_id="b", event_type="product_view")),
        (0, 2, event(2, "2026-11-29T12:00:02Z", user_id="b", event_type="product_view")),  # copy in batch
        (0, 3, purchase),
        (1, 0, b"not json"),
        (1, 1, event(4, "2026-11-29T12:01:10Z", user_id="a")),
    ]
    run_batch(sink, 0, batch0)
    run_batch(sink, 0, batch0)  # Spark re-runs a batch after a crash: no table may change
    batch1 = [
        (0, 4, event(2, "2026-11-29T12:00:02Z", user_id="b", event_type="product_view")),  # copy, earlier batch
        (0, 5, event(5, "2026-11-29T12:00:03Z", user_id="c")),
        (1, 2, event(6, "2026-11-29T12:00:30Z", user_id="z")),  # partition 1 high water 12:01:10 -> late
    ]
    run_batch(sink, 1, batch1)

    assert scalar(warehouse, "SELECT count() FROM {db}.events FINAL") == 5
    assert scalar(warehouse, "SELECT count() FROM {db}.events") == 5
    assert scalar(warehouse, "SELECT count() FROM {db}.dead_letters") == 1
    assert scalar(warehouse, "SELECT count() FROM {db}.late_events") == 1
    assert scalar(warehouse, "SELECT sum(duplicates) FROM {db}.pipeline_batches FINAL") == 2
    assert sum(t.num_rows for t in publisher.published) == 2  # the replay publishes again (at-least-once topic)
    page_views = warehouse.query_rows(
        "SELECT toString(window_start), page_url, views, unique_users FROM {db}.page_views_1m FINAL ORDER BY 1"
    )
    assert page_views == [("2026-11-29 12:00:00", "/home", 3, 3), ("2026-11-29 12:01:00", "/home", 1, 1)]
    by_type = warehouse.query_rows(
        "SELECT event_type, events, users, orders, revenue FROM {db}.events_1m FINAL "
        "WHERE window_start = '2026-11-29 12:00:00' ORDER BY event_type"
    )
    assert by_type == [
        ("page_view", 2, 2, 0, Decimal(0)),
        ("product_view", 1, 1, 0, Decimal(0)),
        ("purchase", 1, 1, 1, Decimal("5")),
    ]
    assert scalar(warehouse, "SELECT revenue FROM {db}.sessions FINAL WHERE session_id = 's1'") == Decimal(5)
    marks = sink.high_water(2)
    assert marks == {
        (TOPIC, 0): datetime(2026, 11, 29, 12, 0, 20, tzinfo=UTC),
        (TOPIC, 1): datetime(2026, 11, 29, 12, 1, 10, tzinfo=UTC),
    }


def test_dead_letters_not_acknowledged_by_the_broker_fail_the_batch_before_its_commit(warehouse) -> None:
    """The dead-letter topic's acknowledgement is awaited while the warehouse is written, but before the commit
    record: a batch whose dead letters the broker did not take is not committed, and its retry is exact."""
    batch = [(20, 0, event(20_000, "2026-11-29T12:00:01Z")), (20, 1, b"not json")]
    failing = WarehouseSink(
        warehouse, Settings().stream, "pipeline-dlq", RecordingPublisher(fails=True), lambda offsets: {}, topic=TOPIC
    )
    with pytest.raises(BrokerError, match="dead-letter publish"):
        run_batch(failing, 0, batch)
    committed = "SELECT count() FROM {db}.pipeline_batches WHERE query_id = 'pipeline-dlq'"
    assert scalar(warehouse, committed) == 0
    publisher = RecordingPublisher()
    sink = WarehouseSink(warehouse, Settings().stream, "pipeline-dlq", publisher, lambda offsets: {}, topic=TOPIC)
    run_batch(sink, 0, batch)
    assert scalar(warehouse, committed) == 1
    assert scalar(warehouse, "SELECT count() FROM {db}.dead_letters WHERE `partition` = 20") == 1
    assert scalar(warehouse, "SELECT count() FROM {db}.events WHERE kafka_partition = 20") == 1
    assert [t.num_rows for t in publisher.published] == [1]


def test_metrics_advance_by_exactly_the_committed_rows(warehouse) -> None:
    from prometheus_client import CollectorRegistry

    from rtap import metrics

    registry = CollectorRegistry()
    registry.register(metrics.STREAM)

    def counted() -> dict[str, float]:
        names = ("batches", "records_read", "records_accepted", "records_duplicate", "records_late")
        values = {name: registry.get_sample_value(f"rtap_stream_{name}_total") or 0.0 for name in names}
        dead = [s.value for m in registry.collect() for s in m.samples if s.name == "rtap_stream_dead_letters_total"]
        return {**values, "dead_letters": sum(dead)}

    before = counted()
    lag = {(TOPIC, 0): PartitionLag(position=8, end=10), (TOPIC, 1): PartitionLag(position=2, end=7)}
    sink = WarehouseSink(
        warehouse, Settings().stream, "pipeline-m", RecordingPublisher(), lambda offsets: lag, topic=TOPIC
    )
    batch = [
        (0, 0, event(101, "2026-11-29T12:00:01Z")),
        (0, 1, event(101, "2026-11-29T12:00:01Z")),  # a copy in the batch
        (0, 2, b"{"),
        (1, 0, event(102, "2026-11-29T12:05:00Z")),
        (1, 1, event(103, "2026-11-29T12:00:00Z")),  # behind partition 1's watermark: late
    ]
    run_batch(sink, 0, batch)
    run_batch(sink, 0, batch)  # a replay: its rows collapse, and the metrics must not move either
    run_batch(sink, 1, [(0, 3, event(104, "2026-11-29T12:00:02Z"))])
    after = counted()
    row = warehouse.query_rows(
        "SELECT count(), sum(input_rows), sum(valid), sum(duplicates), sum(late), sum(dead_letters), "
        "toUnixTimestamp64Milli(max(finished_at)), argMax(kafka_lag, batch_id) "
        "FROM {db}.pipeline_batches FINAL WHERE query_id = 'pipeline-m'"
    )[0]
    delta = {name: after[name] - before[name] for name in after}
    assert delta == {
        "batches": row[0],
        "records_read": row[1],
        "records_accepted": row[2],
        "records_duplicate": row[3],
        "records_late": row[4],
        "dead_letters": row[5],
    }
    assert row[1:6] == (6, 3, 1, 1, 1)
    assert registry.get_sample_value("rtap_stream_last_batch_timestamp_seconds") == row[6] / 1000
    behind = sum(
        registry.get_sample_value("rtap_stream_kafka_lag_records", {"topic": TOPIC, "partition": p}) or 0 for p in "01"
    )
    assert behind == row[7] == 7
    assert registry.get_sample_value("rtap_stream_committed_offset", {"topic": TOPIC, "partition": "1"}) == 2


def test_a_batch_ends_where_spark_planned_it_past_offsets_no_record_shows(warehouse) -> None:
    """A transactional producer's commit marker (offset 3 here) and aborted records take offsets the batch never
    sees: the position is Spark's planned end, so lag and resume start after them, not at them."""
    probed: list[dict] = []

    def lag(positions: Mapping[tuple[str, int], int]) -> dict[tuple[str, int], PartitionLag]:
        probed.append(dict(positions))
        return {}

    sink = WarehouseSink(warehouse, Settings().stream, "pipeline-p", RecordingPublisher(), lag, topic=TOPIC)
    marks = sink.high_water(0)
    records = [(0, offset, event(200 + offset, "2026-11-29T12:00:00Z")) for offset in range(3)]
    planned = {(TOPIC, 0): 4, (TOPIC, 1): 9}  # partition 1: nine offsets of an aborted transaction, no record
    sink.write(0, classify_records(records, marks, max_record_bytes=65536), datetime.now(UTC), marks, planned)
    assert probed == [planned]
    (positions,) = warehouse.query_rows(
        "SELECT topic_end_offsets FROM {db}.pipeline_batches FINAL WHERE query_id = 'pipeline-p'"
    )[0]
    assert dict(positions) == {TOPIC: [(0, 4), (1, 9)]}


def test_every_batch_records_the_ids_of_the_logs_it_read(warehouse) -> None:
    """What the next start compares Kafka's topic ids with (rtap.stream.identity): the newest batch's ids."""
    for batch_id, ids in enumerate(({TOPIC: "id-a", "browser": "id-c"}, {TOPIC: "id-b", "browser": "id-c"})):
        sink = WarehouseSink(
            warehouse,
            Settings().stream,
            f"ids-{batch_id}",
            RecordingPublisher(),
            lambda o: {},
            topic=TOPIC,
            topic_ids=ids,
        )
        marks = sink.high_water(0)
        records = [(99, batch_id, event(900 + batch_id, "2026-11-29T12:00:00Z"))]  # a partition of its own: its marks
        sink.write(0, classify_records(records, marks, max_record_bytes=65536), datetime.now(UTC), marks)

    (recorded,) = warehouse.query_rows(RECORDED_TOPIC_IDS)[0]
    assert dict(recorded) == {TOPIC: "id-b", "browser": "id-c"}


def test_an_empty_batch_commits_a_record_and_writes_nothing_else(warehouse) -> None:
    """An empty topic at start gives Spark's micro-batch 0 no records: it still commits (and must not fail)."""
    sink = WarehouseSink(
        warehouse, Settings().stream, "pipeline-empty", RecordingPublisher(), lambda offsets: {}, topic=TOPIC
    )
    run_batch(sink, 0, [])
    row = warehouse.query_rows(
        "SELECT count(), sum(input_rows) FROM {db}.pipeline_batches FINAL WHERE query_id = 'pipeline-empty'"
    )[0]
    assert row == (1, 0)


@contextlib.contextmanager
def refusing_writes(client: WarehouseClient, table: str) -> Iterator[None]:
    """The table's data directory made immutable: ClickHouse cannot create a part in it (needs root)."""
    (path,) = client.query_rows(
        "SELECT data_paths FROM system.tables WHERE database = '{db}' AND name = {name:String}",
        parameters={"name": table},
    )[0][0]
    subprocess.run(["chattr", "+i", path], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", path], check=True)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("chattr") is None, reason="needs root and chattr")
@pytest.mark.parametrize(("refusing", "hour"), [("events", 8), ("page_views_1m_state", 9)])
def test_a_write_failing_half_way_is_exact_once_retried(warehouse, refusing: str, hour: int) -> None:
    """The events insert feeds the state tables through materialized views: whichever of them fails, the retried
    batch writes what is missing and nothing twice (each case on a window of its own)."""
    sink = WarehouseSink(
        warehouse, Settings().stream, f"pipeline-f{hour}", RecordingPublisher(), lambda offsets: {}, topic=TOPIC
    )
    at = f"2026-11-29T{hour:02d}:00:00Z"
    # Partition `hour`: no other test's high-water mark makes these events late.
    batch = [(hour, i, event(1000 * hour + i, at, user_id=f"u{i}", session_id=f"f{hour}")) for i in range(5)]
    with refusing_writes(warehouse, refusing), pytest.raises(RtapError):
        run_batch(sink, 0, batch)
    run_batch(sink, 0, batch)
    run_batch(sink, 0, batch)
    window = f"window_start = toDateTime('2026-11-29 {hour:02d}:00:00', 'UTC')"
    assert (
        scalar(
            warehouse,
            f"SELECT count() FROM {{db}}.events WHERE toStartOfMinute(event_time) = '2026-11-29 {hour:02d}:00:00'",
        )
        == 5
    )
    assert scalar(warehouse, f"SELECT sum(views) FROM {{db}}.page_views_1m_state WHERE {window}") == 5
    assert scalar(warehouse, f"SELECT events FROM {{db}}.sessions FINAL WHERE session_id = 'f{hour}'") == 5
    assert warehouse.query_rows(f"SELECT views, unique_users FROM {{db}}.page_views_1m FINAL WHERE {window}") == [
        (5, 5)
    ]


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("chattr") is None, reason="needs root and chattr")
@pytest.mark.parametrize(("retried", "hour"), [(7, 10), (3, 11)])
def test_a_batch_cut_anew_after_a_half_written_block_is_exact(warehouse, retried: int, hour: int) -> None:
    """A kill after the events insert stored its block in ``events`` but before the last materialized view had
    it, then a lost checkpoint: the next pipeline cuts the batch at other offsets (``retried`` of the first
    attempt's 5 records, then the rest), finds those records stored by a block that is not its own, and must
    still leave every view with each record exactly once."""
    at = f"2026-11-29T{hour:02d}:00:00Z"
    records = [(hour, i, event(1000 * hour + i, at, user_id=f"u{i}", session_id=f"c{hour}")) for i in range(7)]
    killed = WarehouseSink(
        warehouse, Settings().stream, f"killed-{hour}", RecordingPublisher(), lambda offsets: {}, topic=TOPIC
    )
    with refusing_writes(warehouse, "page_views_1m_state"), pytest.raises(RtapError):
        run_batch(killed, 0, records[:5])
    anew = WarehouseSink(
        warehouse, Settings().stream, f"anew-{hour}", RecordingPublisher(), lambda offsets: {}, topic=TOPIC
    )
    run_batch(anew, 0, records[:retried])
    run_batch(anew, 1, records[retried:])
    window = f"window_start = toDateTime('2026-11-29 {hour:02d}:00:00', 'UTC')"
    assert scalar(warehouse, f"SELECT sum(views) FROM {{db}}.page_views_1m_state WHERE {window}") == 7
    assert scalar(warehouse, f"SELECT events FROM {{db}}.sessions FINAL WHERE session_id = 'c{hour}'") == 7
    assert warehouse.query_rows(f"SELECT views, unique_users FROM {{db}}.page_views_1m FINAL WHERE {window}") == [
        (7, 7)
    ]
    assert warehouse.query_rows(f"SELECT events, users FROM {{db}}.events_1m FINAL WHERE {window}") == [(7, 7)]
    assert (
        scalar(warehouse, "SELECT sum(duplicates) FROM {db}.pipeline_batches FINAL WHERE query_id LIKE 'anew-%'") == 0
    )


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("chattr") is None, reason="needs root and chattr")
@pytest.mark.parametrize("retried", [3, 7])
def test_a_half_written_block_across_midnight_is_exact(warehouse, retried: int) -> None:
    """As above, with the killed block spanning midnight: ClickHouse writes it as one part per day (events and
    the state tables are partitioned by day), each deduplicated on its own, and the re-sent block must still
    give each day's windows their records exactly once."""
    times = ["2026-11-27T23:59:58Z"] * 3 + ["2026-11-28T00:00:01Z"] * 4
    records = [(5, i, event(50_000 + i, at, user_id=f"m{i}", session_id="midnight")) for i, at in enumerate(times)]
    killed = WarehouseSink(
        warehouse, Settings().stream, "killed-midnight", RecordingPublisher(), lambda o: {}, topic=TOPIC
    )
    with refusing_writes(warehouse, "page_views_1m_state"), pytest.raises(RtapError):
        run_batch(killed, 0, records[:5])
    anew = WarehouseSink(warehouse, Settings().stream, "anew-midnight", RecordingPublisher(), lambda o: {}, topic=TOPIC)
    run_batch(anew, 0, records[:retried])
    run_batch(anew, 1, records[retried:])
    for window, views in (("2026-11-27 23:59:00", 3), ("2026-11-28 00:00:00", 4)):
        where = f"window_start = toDateTime('{window}', 'UTC')"
        assert scalar(warehouse, f"SELECT sum(views) FROM {{db}}.page_views_1m_state WHERE {where}") == views
        assert warehouse.query_rows(f"SELECT views, unique_users FROM {{db}}.page_views_1m FINAL WHERE {where}") == [
            (views, views)
        ]
        assert warehouse.query_rows(f"SELECT events, users FROM {{db}}.events_1m FINAL WHERE {where}") == [
            (views, views)
        ]
    assert scalar(warehouse, "SELECT events FROM {db}.sessions FINAL WHERE session_id = 'midnight'") == 7
    assert scalar(warehouse, "SELECT count() FROM {db}.events FINAL WHERE session_id = 'midnight'") == 7


def test_a_batch_spanning_more_minutes_than_one_statement_takes_rewrites_every_window(warehouse) -> None:
    """The final rows of the touched windows are rewritten FINALS_MINUTES minutes a statement (a server takes the
    minutes in a URL): a batch of a backlog whose events span more minutes rewrites every one of them."""
    minutes = FINALS_MINUTES + 500
    start = datetime(2025, 3, 1, tzinfo=UTC)
    records = [
        (6, i, event(60_000 + i, (start + timedelta(minutes=i)).isoformat(), session_id="backlog"))
        for i in range(minutes)
    ]
    sink = WarehouseSink(warehouse, Settings().stream, "backlog", RecordingPublisher(), lambda o: {}, topic=TOPIC)
    run_batch(sink, 0, records)
    where = "window_start >= toDateTime('2025-03-01 00:00:00', 'UTC') AND window_start < '2025-04-01'"
    assert warehouse.query_rows(f"SELECT count(), sum(views) FROM {{db}}.page_views_1m FINAL WHERE {where}") == [
        (minutes, minutes)
    ]
    assert warehouse.query_rows(f"SELECT count(), sum(events) FROM {{db}}.events_1m FINAL WHERE {where}") == [
        (minutes, minutes)
    ]
