"""The panels that read partial states or event_ids instead of every event give the answers a full read gives.

active_users merges the one-minute windows' user states (migration 0008); browser_events reads ``events`` for the
20 newest ids that ``event_ids`` names (migrations 0010, 0013); events_total takes the first and last event times
from ``event_ids`` by the minute (migration 0013). Each is checked here against the
straightforward query over ``events`` on a warehouse whose rows are built to catch a wrong bound: the collector's
events spread over 40 minutes with two in one minute at the cut, newer events of another topic, and one id stored
twice (a replay under a lost checkpoint, which FINAL would have collapsed).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from rtap.dashboard.api import run_panel
from rtap.dashboard.definition import load_definition, setting_parameters
from rtap.settings import KafkaSettings, Settings
from rtap.stream.sink import rewrite_final_rows, touched_minutes
from rtap.warehouse import WarehouseClient, create_client
from rtap.warehouse.migrate import apply_migrations
from tests.support.seed import UTC_MS, insert_events, minute_floor, purchase

BROWSER = KafkaSettings.model_fields["browser_topic"].default
PANELS = load_definition().panels_by_id()


def view(at: datetime, user: str, offset: int, topic: str) -> dict[str, Any]:
    return {
        **purchase(at, user, "p1", "1.00", 1, offset),
        "event_type": "product_view",
        "price": None,
        "quantity": None,
        "order_id": None,
        "kafka_topic": topic,
    }


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, WarehouseClient, datetime]]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("rtap-panels"))
    now = minute_floor(datetime.now(UTC)) + timedelta(seconds=30)
    # 30 collector events, one every 80 s back from now (two of them share some minutes), by 12 users.
    browser = [view(now - timedelta(seconds=80 * i), f"b{i % 12}", i, BROWSER) for i in range(30)]
    # Newer events of the contract topic, by other users and by two of the collector's.
    others = [view(now - timedelta(seconds=i), f"u{i % 7}" if i % 9 else "b1", 1000 + i, "") for i in range(60)]
    # The newest collector event stored again from another Kafka record.
    again = {**browser[0], "kafka_offset": 5000}
    with create_client(settings) as writer:
        apply_migrations(writer)
        insert_events(writer, browser[::2])
        insert_events(writer, browser[1::2] + others)
        insert_events(writer, [again])
        # The windows' final rows, as the sink writes them after each batch.
        minutes = touched_minutes(pa.array([row["event_time"] for row in browser + others], UTC_MS))
        rewrite_final_rows(writer, minutes, 1000)
        with create_client(settings, readonly=True) as reader:
            yield settings, reader, now


def answer(stored: tuple[Settings, WarehouseClient, datetime], panel_id: str, start: datetime) -> list[list[Any]]:
    settings, reader, now = stored
    table, _ = run_panel(
        reader, PANELS[panel_id], start, now + timedelta(seconds=1), setting_values=setting_parameters(settings)
    )
    return [list(row.values()) for row in table.to_pylist()]


@pytest.mark.parametrize("back", [timedelta(minutes=5), timedelta(minutes=25), timedelta(hours=1)])
def test_latest_browser_events_are_the_newest_twenty_each_once(
    stored: tuple[Settings, WarehouseClient, datetime], back: timedelta
) -> None:
    _, reader, now = stored
    start = now - back
    expected = reader.query_rows(
        "SELECT event_time, event_type, page_url, product_id, user_id, session_id, event_id "
        "FROM {db}.events FINAL WHERE kafka_topic = {topic:String} "
        "AND event_time >= {start:DateTime64(3, 'UTC')} AND event_time < {end:DateTime64(3, 'UTC')} "
        "ORDER BY event_time DESC, event_id LIMIT 20",
        parameters={"topic": BROWSER, "start": start, "end": now + timedelta(seconds=1)},
    )
    rows = answer(stored, "browser_events", start)
    assert len(expected) == min(20, back // timedelta(seconds=80) + 1)
    assert [[str(v) for v in row] for row in rows] == [[str(v) for v in row] for row in expected]
    assert len({row[-1] for row in rows}) == len(rows)


@pytest.mark.parametrize("back", [timedelta(minutes=3), timedelta(minutes=17), timedelta(hours=1)])
def test_active_users_are_the_distinct_users_of_the_ranges_minutes(
    stored: tuple[Settings, WarehouseClient, datetime], back: timedelta
) -> None:
    _, reader, now = stored
    start = now - back
    # Whole minutes: the minute the range starts in counts from its start, as every windowed panel does.
    (expected,) = reader.query_rows(
        "SELECT uniqExactIf(user_id, event_time >= toStartOfMinute({end:DateTime64(3, 'UTC')} - INTERVAL 5 MINUTE)), "
        "uniqExact(user_id) FROM {db}.events "
        "WHERE event_time >= toStartOfMinute({start:DateTime64(3, 'UTC')}) AND event_time < {end:DateTime64(3, 'UTC')}",
        parameters={"start": start, "end": now + timedelta(seconds=1)},
    )
    assert answer(stored, "active_users", start) == [list(expected)]
    assert expected[1] > expected[0] or back < timedelta(minutes=5)  # the range reaches users the last 5 min lack


def test_no_collector_events_is_an_empty_list(stored: tuple[Settings, WarehouseClient, datetime]) -> None:
    settings, reader, now = stored
    table, _ = run_panel(
        reader,
        PANELS["browser_events"],
        now - timedelta(hours=1),
        now,
        setting_values={**setting_parameters(settings), "browser_topic": f"no.such.topic.{uuid.uuid4().hex}"},
    )
    assert table.num_rows == 0


@pytest.mark.parametrize("back", [timedelta(minutes=3), timedelta(minutes=40)])
def test_events_in_range_run_from_the_first_event_to_the_last(
    stored: tuple[Settings, WarehouseClient, datetime], back: timedelta
) -> None:
    """The rate's span: from the first event of the range's first window to the last of its newest, which
    event_ids (migration 0013) gives by the minute as events gives it by reading the hour."""
    _, reader, now = stored
    start = now - back
    (first, last, total) = reader.query_rows(
        "SELECT min(event_time), max(event_time), count() FROM {db}.events "
        "WHERE event_time >= toStartOfMinute({start:DateTime64(3, 'UTC')}) AND event_time < {end:DateTime64(3, 'UTC')}",
        parameters={"start": start, "end": now + timedelta(seconds=1)},
    )[0]
    assert total > 0
    assert last > first
    per_second = round(total / max(1, (last - first).total_seconds()), 1)
    assert answer(stored, "events_total", start) == [[total, per_second]]
