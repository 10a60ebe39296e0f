"""Rows for the tables the dashboards read, written through the real warehouse client.

The values are small and chosen so each panel's expected answer can be worked out by hand; the
integration test checks those answers, the browser test uses the same rows to see every panel drawn.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa

from rtap.settings import KafkaSettings, Settings
from rtap.warehouse import WarehouseClient, create_client
from rtap.warehouse.migrate import apply_migrations

UTC_MS = pa.timestamp("ms", tz="UTC")
UTC_S = pa.timestamp("s", tz="UTC")
PAGES = ["/", "/search", "/product/p1", "/product/p2", "/cart"]


def _table(rows: list[dict[str, Any]], types: dict[str, pa.DataType]) -> pa.Table:
    return pa.table({name: pa.array([row[name] for row in rows], type) for name, type in types.items()})


def minute_floor(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def seed_page_views(
    client: WarehouseClient, now: datetime, *, minutes: int = 10, version: int = 1, extra_views: int = 0
) -> None:
    """Per-minute page views for the last ``minutes`` minutes; a higher ``version`` replaces the window."""
    last = minute_floor(now)
    rows = [
        {
            "window_start": last - timedelta(minutes=j),
            "page_url": page,
            "views": 10 * (i + 1) + j + extra_views,
            "unique_users": 5 + i,
            "version": version,
            "updated_at": now,
        }
        for j in range(minutes)
        for i, page in enumerate(PAGES)
    ]
    types = {
        "window_start": UTC_S,
        "page_url": pa.string(),
        "views": pa.uint64(),
        "unique_users": pa.uint64(),
        "version": pa.int64(),
        "updated_at": UTC_MS,
    }
    client.insert_arrow("page_views_1m", _table(rows, types))


def seed_clickstream(client: WarehouseClient, now: datetime, *, minutes: int = 10, version: int = 1) -> None:
    """Windowed metrics for the last ``minutes`` minutes, raw purchases, sessions and bot suspects."""
    last = minute_floor(now)
    windows = [last - timedelta(minutes=m) for m in range(minutes)]
    seed_page_views(client, now, minutes=minutes, version=version)
    types = ["page_view", "product_view", "add_to_cart", "checkout", "purchase"]
    events_1m = [
        {
            "window_start": w,
            "event_type": t,
            "events": 100 - 15 * i,
            "users": 20 - i,
            "orders": 3 if t == "purchase" else 0,
            "revenue": Decimal("59.97") if t == "purchase" else Decimal(0),
            "version": version,
            "updated_at": now,
        }
        for w in windows
        for i, t in enumerate(types)
    ]
    client.insert_arrow(
        "events_1m",
        _table(
            events_1m,
            {
                "window_start": UTC_S,
                "event_type": pa.string(),
                "events": pa.uint64(),
                "users": pa.uint64(),
                "orders": pa.uint64(),
                "revenue": pa.decimal128(38, 6),
                "version": pa.int64(),
                "updated_at": UTC_MS,
            },
        ),
    )
    seed_events(client, now)
    sessions = [
        {
            "session_id": f"s{i}",
            "user_id": f"u{i}",
            "session_start": now - timedelta(minutes=8),
            "session_end": now - timedelta(minutes=1),
            "events": 6,
            "page_views": 3,
            "reached_cart": int(i < 6),
            "reached_checkout": int(i < 4),
            "purchased": int(i < 3),
            "revenue": Decimal("19.99") if i < 3 else Decimal(0),
        }
        for i in range(10)
    ]
    # Still open: a cart, no purchase yet, its last event 20 s ago. Not abandoned until the session gap passes.
    sessions.append({**sessions[5], "session_id": "s10", "user_id": "u10", "session_end": now - timedelta(seconds=20)})
    client.insert_arrow(
        "sessions",
        _table(
            sessions,
            {
                "session_id": pa.string(),
                "user_id": pa.string(),
                "session_start": UTC_MS,
                "session_end": UTC_MS,
                "events": pa.uint64(),
                "page_views": pa.uint64(),
                "reached_cart": pa.uint8(),
                "reached_checkout": pa.uint8(),
                "purchased": pa.uint8(),
                "revenue": pa.decimal128(38, 6),
            },
        ),
    )
    client.insert_arrow(
        "bot_suspects",
        _table(
            [
                {
                    "window_start": last - timedelta(minutes=2),
                    "actor_kind": "ip",
                    "actor": "203.0.113.9",
                    "clicks": 240,
                    "threshold": 60,
                    "version": version,
                    "updated_at": now,
                }
            ],
            {
                "window_start": UTC_S,
                "actor_kind": pa.string(),
                "actor": pa.string(),
                "clicks": pa.uint64(),
                "threshold": pa.uint64(),
                "version": pa.int64(),
                "updated_at": UTC_MS,
            },
        ),
    )


def _event_columns() -> dict[str, pa.DataType]:
    return {
        "event_id": pa.string(),
        "event_type": pa.string(),
        "event_time": UTC_MS,
        "user_id": pa.string(),
        "session_id": pa.string(),
        "page_url": pa.string(),
        "product_id": pa.string(),
        "price": pa.decimal128(18, 6),
        "quantity": pa.int32(),
        "order_id": pa.string(),
        "schema_version": pa.uint8(),
        "kafka_topic": pa.string(),
        "kafka_partition": pa.int32(),
        "kafka_offset": pa.int64(),
        "kafka_timestamp": UTC_MS,
        "batch_id": pa.int64(),
        "ingested_at": UTC_MS,
    }


def purchase(
    at: datetime, user: str, product: str, price: str, quantity: int, offset: int, session: str = "s-late"
) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "purchase",
        "event_time": at,
        "user_id": user,
        "session_id": session,
        "page_url": "/checkout",
        "product_id": product,
        "price": Decimal(price),
        "quantity": quantity,
        "order_id": f"o{offset}",
        "schema_version": 1,
        "kafka_topic": "",
        "kafka_partition": 0,
        "kafka_offset": offset,
        "kafka_timestamp": at,
        "batch_id": 1,
        "ingested_at": at,
    }


def insert_events(client: WarehouseClient, rows: list[dict[str, Any]]) -> None:
    """Rows of :func:`purchase`'s shape into ``events``, as the job would have stored them."""
    client.insert_arrow("events", _table(rows, _event_columns()))


def seed_events(client: WarehouseClient, now: datetime) -> None:
    """Purchases by 3 users: p1 earns 3 x 10.00, p2 earns 1 x 25.50 (and u1 buys twice). They belong to the
    seeded sessions that purchased (s0..s2): the sessions view on events (migration 0008) adds them there."""
    rows = [
        purchase(now - timedelta(minutes=3), "u1", "p1", "10.00", 2, 1, "s0"),
        purchase(now - timedelta(minutes=2), "u2", "p2", "25.50", 1, 2, "s1"),
        purchase(now - timedelta(minutes=1), "u1", "p1", "10.00", 1, 3, "s0"),
        purchase(now - timedelta(seconds=90), "u3", "p3", "5.00", 1, 4, "s2"),
    ]
    # u1's view of p1 in the demo shop, read from the collector's topic (the browser events panel).
    rows.append(
        {
            **purchase(now - timedelta(minutes=4), "u1", "p1", "10.00", 1, 5, "s0"),
            "event_type": "product_view",
            "page_url": "/shop/product.html?id=p1",
            "price": None,
            "quantity": None,
            "order_id": None,
            "kafka_topic": KafkaSettings.model_fields["browser_topic"].default,
        }
    )
    insert_events(client, rows)


def seed_pipeline(client: WarehouseClient, now: datetime, *, batches: int = 30, first_batch: int = 0) -> None:
    """One micro-batch every 10 s up to ``now``, plus a few dead letters and late events."""
    rows = []
    for n in range(batches):
        finished = now - timedelta(seconds=10 * (batches - 1 - n))
        batch = first_batch + n
        rows.append(
            {
                "query_id": "q-test",
                "batch_id": batch,
                "started_at": finished - timedelta(milliseconds=800),
                "finished_at": finished,
                "input_rows": 1000 + batch,
                "valid": 990,
                "duplicates": 5,
                "late": 2,
                "dead_letters": 3,
                "duration_ms": 800 + batch,
                "rows_per_second": 1250.0,
                "watermark": finished - timedelta(seconds=30),
                "max_event_time": finished - timedelta(seconds=1),
                "freshness_ms": 1500,
                "kafka_lag": 40 + batch,
                "partition_high_water": [(0, finished)],
                "end_offsets": [(0, 1000 * (batch + 1))],
            }
        )
    client.insert_arrow(
        "pipeline_batches",
        _table(
            rows,
            {
                "query_id": pa.string(),
                "batch_id": pa.int64(),
                "started_at": UTC_MS,
                "finished_at": UTC_MS,
                "input_rows": pa.uint64(),
                "valid": pa.uint64(),
                "duplicates": pa.uint64(),
                "late": pa.uint64(),
                "dead_letters": pa.uint64(),
                "duration_ms": pa.uint64(),
                "rows_per_second": pa.float64(),
                "watermark": UTC_MS,
                "max_event_time": UTC_MS,
                "freshness_ms": pa.int64(),
                "kafka_lag": pa.int64(),
                "partition_high_water": pa.map_(pa.int32(), UTC_MS),
                "end_offsets": pa.map_(pa.int32(), pa.int64()),
            },
        ),
    )
    dead = [
        {
            "received_at": now - timedelta(minutes=m),
            "topic": "clickstream.events",
            "partition": 0,
            "offset": 10_000 + first_batch * 10 + m,
            "kafka_timestamp": now - timedelta(minutes=m),
            # Two records cut at different places: one class of reason (the parser's position differs).
            "error": "event_type: must be one of page_view, ..."
            if m % 2
            else f"invalid JSON (unexpected end of data: line 1 column {40 + m} (char {39 + m}))",
            "raw": "{bad",
            "batch_id": first_batch,
        }
        for m in range(3)
    ]
    client.insert_arrow(
        "dead_letters",
        _table(
            dead,
            {
                "received_at": UTC_MS,
                "topic": pa.string(),
                "partition": pa.int32(),
                "offset": pa.int64(),
                "kafka_timestamp": UTC_MS,
                "error": pa.string(),
                "raw": pa.string(),
                "batch_id": pa.int64(),
            },
        ),
    )
    late = [
        {
            **purchase(now - timedelta(minutes=5), "u9", "p9", "1.00", 1, 20_000 + first_batch * 10 + m),
            "ingested_at": now - timedelta(minutes=m),
        }
        for m in range(2)
    ]
    client.insert_arrow("late_events", _table(late, _event_columns()))


FLOW_EVENTS = """
INSERT INTO {db}.events (event_id, event_type, event_time, user_id, session_id, page_url, schema_version,
                         kafka_partition, kafka_offset, kafka_timestamp, batch_id, ingested_at)
SELECT generateUUIDv4(), if(number % 10 = 0, 'product_view', 'page_view'), at, concat('u', toString(number % 500)),
       concat('s', toString(number % 800)), '/', 1, 0, number, at, 0, at
FROM (SELECT number, toDateTime64('$start', 3, 'UTC') + toIntervalMillisecond(number) AS at FROM numbers($count))
"""
FLOW_WINDOWS = """
INSERT INTO {db}.events_1m
SELECT toStartOfMinute(event_time), event_type, count(), uniqExact(user_id), 0, toDecimal128(0, 6), 1, now64(3)
FROM {db}.events GROUP BY toStartOfMinute(event_time), event_type
"""


def seed_flow(client: WarehouseClient, start: datetime, end: datetime) -> None:
    """1,000 events/s (one per millisecond) from ``start`` to ``end``, and their one-minute windows: a pipeline
    that started some minutes into the range a dashboard shows. Meant for a database of its own."""
    count = int((end - start).total_seconds() * 1000)
    first = start.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]  # our own values: no parameters needed
    client.command(FLOW_EVENTS.replace("$start", first).replace("$count", str(count)))
    client.command(FLOW_WINDOWS)


@contextlib.contextmanager
def seeded_warehouse(settings: Settings, now: datetime) -> Iterator[tuple[WarehouseClient, WarehouseClient]]:
    """A migrated warehouse with the dashboard seed (clickstream and pipeline rows up to ``now``): writer, reader."""
    with create_client(settings) as writer:
        apply_migrations(writer)
        seed_clickstream(writer, now)
        seed_pipeline(writer, now)
        with create_client(settings, readonly=True) as reader:
            yield writer, reader
