"""Reconciliation: the pure comparison, and the queries against a real chDB filled like a correct pipeline would."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from rtap.cli import app
from rtap.contract import validate_event
from rtap.contract.vocabulary import ACCEPTED, DEAD_LETTER, DUPLICATE, LATE
from rtap.errors import ConfigError, ValidationFailedError
from rtap.generate import ClickstreamGenerator, GroundTruth, PageViews
from rtap.ops.reconcile import Observed, format_report, load_truth, observe, reconcile
from rtap.settings import GeneratorSettings, Settings, WarehouseSettings
from rtap.stream.sink import WarehouseSink
from rtap.warehouse import WarehouseClient, create_client
from rtap.warehouse.migrate import apply_migrations
from tests.support.records import LEGACY_TOPIC, KeptDeadLetters, classify_records, legacy_click

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
TOPIC = "clickstream.events"


def exact(truth: GroundTruth) -> Observed:
    return Observed(
        events=truth.accepted,
        dead_letters=truth.dead_letters,
        late_events=truth.late,
        duplicates=truth.duplicates,
        sessions=truth.sessions,
        page_views_1m=truth.page_views_1m(),
        events_1m=truth.events_1m(),
    )


@pytest.fixture(scope="module")
def run() -> tuple[ClickstreamGenerator, list[tuple[int, bytes]]]:
    settings = GeneratorSettings(users=200, duplicate_rate=0.05, late_rate=0.05, malformed_rate=0.05, seed=3)
    generator = ClickstreamGenerator(settings, partitions=3, watermark_delay_s=30)
    records = [
        (record.partition, record.value)
        for i in range(3_000)
        for record in generator.generate(T0 + timedelta(milliseconds=50 * i))
    ]
    return generator, records


def test_an_exact_warehouse_passes(run: tuple[ClickstreamGenerator, list[tuple[int, bytes]]]) -> None:
    truth = run[0].truth
    report = reconcile(truth, exact(truth))
    assert report.ok
    assert [row[3] for row in format_report(report)] == ["ok"] * len(report.checks)


def test_every_difference_is_reported(run: tuple[ClickstreamGenerator, list[tuple[int, bytes]]]) -> None:
    truth = run[0].truth
    pages = dict(truth.page_views_1m())
    first, second = list(pages)[:2]
    pages[first] = pages[first]._replace(unique_users=pages[first].unique_users + 1)
    del pages[second]
    pages[T0 - timedelta(days=1), "https://shop.example/ghost"] = PageViews(1, 1)
    events = dict(truth.events_1m())
    key = next(k for k in events if k[1] == "purchase")
    events[key] = events[key]._replace(revenue=events[key].revenue + Decimal("0.01"))
    observed = dataclasses.replace(exact(truth), events=truth.accepted - 1, page_views_1m=pages, events_1m=events)

    report = reconcile(truth, observed, max_differences=2)
    assert [check.name for check in report.failed] == ["events", "accounted", "page_views_1m", "events_1m"]
    by_name = {check.name: check for check in report.checks}
    assert by_name["events"].differences == ("off by -1",)
    assert by_name["page_views_1m"].total_differences == 3
    assert len(by_name["page_views_1m"].differences) == 2  # only the first N are listed
    assert "unexpected row" in by_name["page_views_1m"].differences[0]  # sorted by minute: the ghost is first
    assert "revenue expected" in by_name["events_1m"].differences[0]
    table = {row[0]: row[3] for row in format_report(report)}
    assert "... and 1 more" in table["page_views_1m"]


def test_missing_truth_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no ground truth"):
        load_truth([tmp_path / "latest.json"])


def test_truth_files_of_several_runs_are_merged(tmp_path: Path) -> None:
    first = GroundTruth(partitions=1, watermark_delay_s=30)
    second = GroundTruth(partitions=1, watermark_delay_s=30)
    first.add_dead_letter()
    second.add_dead_letter()
    (tmp_path / "a.json").write_bytes(first.to_json())
    (tmp_path / "b.json").write_bytes(second.to_json())
    assert load_truth([tmp_path / "a.json", tmp_path / "b.json"]).dead_letters == 2


# -- the query part, against a real chDB ---------------------------------------------------------------


@pytest.fixture(scope="module")
def warehouse_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    database = f"rtap_test_{uuid.uuid4().hex[:8]}"
    return Settings(
        data_dir=tmp_path_factory.mktemp("rtap"), warehouse=WarehouseSettings(backend="chdb", database=database)
    )


@pytest.fixture(scope="module")
def warehouse(warehouse_settings: Settings) -> Iterator[WarehouseClient]:
    with create_client(warehouse_settings) as client:
        apply_migrations(client)
        yield client


def load_like_a_pipeline(client: WarehouseClient, records: list[tuple[int, bytes]], partitions: int) -> None:
    """Write each record where a correct pipeline would; ClickHouse computes the windows from `events`."""
    reference = GroundTruth(partitions=partitions, watermark_delay_s=30)
    kept: dict[str, list[dict[str, object]]] = {ACCEPTED: [], LATE: []}
    dead, duplicates = 0, 0
    for offset, (partition, value) in enumerate(records):
        status = reference.add_record(partition, value)
        if status == DEAD_LETTER:
            dead += 1
            client.command(
                "INSERT INTO {db}.dead_letters (received_at, topic, `partition`, `offset`, error, raw) "
                f"VALUES (now64(3), '{TOPIC}', {partition}, {offset}, 'broken', '')"
            )
        elif status == DUPLICATE:
            duplicates += 1
        else:
            event = validate_event(value)
            event["kafka_partition"], event["kafka_offset"] = partition, offset
            kept[status].append(event)
    columns = "event_id, event_type, event_time, user_id, session_id, page_url, price, quantity, order_id"
    # ingested_at = now: the tables' TTL counts from ingestion, and a zero time would expire the rows on insert.
    select = columns.replace("event_id,", "toUUID(event_id),") + ", kafka_partition, kafka_offset, now64(3)"
    for status, table in ((ACCEPTED, "events"), (LATE, "late_events")):
        rows = pa.Table.from_pylist(
            [{k: e[k] for k in [*columns.split(", "), "kafka_partition", "kafka_offset"]} for e in kept[status]]
        )
        client.command(
            f"INSERT INTO {{db}}.{table} ({columns}, kafka_partition, kafka_offset, ingested_at) "
            f"SELECT {select} FROM $rows",
            inputs={"rows": rows},
        )
    client.command(
        "INSERT INTO {db}.pipeline_batches (query_id, batch_id, started_at, duplicates) VALUES "
        # The second batch's row twice: a replayed commit record collapses under FINAL.
        f"('q', 0, now64(3), {duplicates - 1}), ('q', 1, now64(3), 1), ('q', 1, now64(3), 1)"
    )
    client.command(
        "INSERT INTO {db}.page_views_1m SELECT toStartOfMinute(event_time), page_url, count(), uniqExact(user_id), "
        "1, now64(3) FROM {db}.events WHERE event_type IN ('page_view', 'product_view') GROUP BY 1, 2"
    )
    client.command(
        "INSERT INTO {db}.events_1m SELECT toStartOfMinute(event_time), event_type, count(), uniqExact(user_id), "
        "uniqExactIf(order_id, event_type = 'purchase' AND order_id IS NOT NULL), "
        "sum(if(event_type = 'purchase', toDecimal128(ifNull(price, 0), 6) * ifNull(quantity, 0), "
        "toDecimal128(0, 6))), 1, now64(3) FROM {db}.events GROUP BY 1, 2"
    )
    client.command(
        "INSERT INTO {db}.sessions (session_id, user_id, events) SELECT session_id, any(user_id), count() "
        "FROM {db}.events GROUP BY session_id"
    )
    assert dead == reference.dead_letters


def test_a_correctly_loaded_warehouse_reconciles_exactly(
    warehouse: WarehouseClient,
    warehouse_settings: Settings,
    run: tuple[ClickstreamGenerator, list[tuple[int, bytes]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    generator, records = run
    load_like_a_pipeline(warehouse, records, generator.partitions)
    observed = observe(warehouse, topic=TOPIC)
    report = reconcile(generator.truth, observed)
    assert report.ok, report.failed
    assert observed.events == generator.truth.accepted > 0

    # The command, through the same settings (readonly client; chDB is shared within this process).
    truth_path = tmp_path / "truth.json"
    truth_path.write_bytes(generator.truth.to_json())
    monkeypatch.setenv("RTAP_DATA_DIR", str(warehouse_settings.data_dir))
    monkeypatch.setenv("RTAP_CLICKHOUSE_DATABASE", warehouse_settings.warehouse.database)
    runner = CliRunner()
    passed = runner.invoke(app, ["reconcile", "--truth", str(truth_path)])
    assert passed.exit_code == 0, passed.output
    assert "page_views_1m" in passed.output

    # A rewrite of one window with a newer version is what readers see: reconciliation must notice it.
    window, page = next(iter(observed.page_views_1m))
    warehouse.command(
        f"INSERT INTO {{db}}.page_views_1m VALUES (toDateTime('{window:%Y-%m-%d %H:%M:%S}', 'UTC'), '{page}', "
        "999, 1, 2, now64(3))"
    )
    changed = reconcile(generator.truth, observe(warehouse, topic=TOPIC))
    assert [check.name for check in changed.failed] == ["page_views_1m"]
    assert "views expected" in changed.failed[0].differences[0]
    failed = runner.invoke(app, ["reconcile", "--truth", str(truth_path)])
    assert isinstance(failed.exception, ValidationFailedError)
    assert "1 of 9 checks differ: page_views_1m" in str(failed.exception)


def user_ids(values: Iterator[bytes]) -> Iterator[str]:
    """The user ids of the records that are JSON objects with one (the generator also sends broken ones)."""
    for value in values:
        try:
            yield str(orjson.loads(value)["user_id"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue


def test_events_of_other_topics_beside_the_truths_change_nothing_it_observes(
    run: tuple[ClickstreamGenerator, list[tuple[int, bytes]]], warehouse_settings: Settings
) -> None:
    """The job reads other topics beside the generator's (the collector's, a previous system's): their events
    share the tables and the windows, on the same pages, minutes and users, with duplicates of their own. What
    reconcile observes of the generator's topic is still exactly its truth. Written by the job's own sink."""
    generator, records = run
    users = sorted(set(user_ids(value for _, value in records)))[:20]
    pages = sorted(generator.truth.page_views_1m())[:20]
    others = [  # page views in the generator's windows, by its users, on its pages; every tenth sent twice
        legacy_click(i, timestamp=f"{window:%Y-%m-%dT%H:%M}:30.000000", user_id=users[i % len(users)], page_url=page)
        for i, (window, page) in enumerate(pages)
    ]
    others += others[::10]
    mixed = [(TOPIC, partition, value) for partition, value in records]
    for i, click in enumerate(others):  # spread through the generator's records
        mixed.insert(i * len(mixed) // len(others), (LEGACY_TOPIC, 0, orjson.dumps(click)))
    # A database of its own beside the module's (chDB opens one data directory per process).
    settings = Settings(data_dir=warehouse_settings.data_dir, warehouse=WarehouseSettings(database="rtap_mixed"))
    with create_client(settings) as client:
        apply_migrations(client)
        sink = WarehouseSink(client, settings.stream, "mixed", KeptDeadLetters(), lambda offsets: {}, topic=TOPIC)
        offsets: dict[tuple[str, int], int] = {}
        for batch_id, start in enumerate(range(0, len(mixed), 500)):
            chunk = mixed[start : start + 500]
            numbered = []
            for topic, partition, value in chunk:
                offsets[topic, partition] = offsets.get((topic, partition), -1) + 1
                numbered.append((partition, offsets[topic, partition], value))
            marks = sink.high_water(batch_id)
            classified = classify_records(numbered, marks, topic=[topic for topic, _, _ in chunk])
            sink.write(batch_id, classified, datetime.now(UTC), marks)
        stored = client.query_rows(
            "SELECT count() FROM {db}.events FINAL WHERE kafka_topic = {topic:String}",
            parameters={"topic": LEGACY_TOPIC},
        )
        assert stored == [(len(pages),)]  # the other topic's events are there, its copies counted as duplicates
        report = reconcile(generator.truth, observe(client, topic=TOPIC))
    assert report.ok, report.failed
