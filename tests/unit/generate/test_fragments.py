"""The fragments of a record: joined, they are the JSON an encoder would write, in canonical time form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from rtap.contract import format_event_time, validate_event
from rtap.generate import fragments
from rtap.generate.catalog import Product

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EVENT_ID = "0b7e2f4c-1d2a-4c3b-9e8f-123456789abc"
SESSION_ID = "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d"


def test_time_fragments_are_the_canonical_event_time() -> None:
    times = fragments.TimeFragments()
    start = round(datetime(2026, 11, 29, 23, 59, 58, tzinfo=UTC).timestamp() * 1000)
    for ms in [*range(start, start + 2_500, 7), start + 5, start]:  # across seconds and a day, and back
        expected = format_event_time(EPOCH + timedelta(milliseconds=ms))
        assert fragments.TimeFragments().of(ms) == times.of(ms) == expected.encode() + b'",'


def test_joined_fragments_are_a_valid_record() -> None:
    product = Product("sku-000042", "shoes", "https://shop.example/p/sku-000042", 59.99, 59_990_000)
    head = fragments.EVENT_HEAD[0] + EVENT_ID.encode() + fragments.EVENT_HEAD[1]
    at = datetime(2026, 11, 29, 12, 0, 1, 250_000, tzinfo=UTC)
    agent = fragments.agent("Mozilla/5.0", "mobile", "DE")
    tail = fragments.session_tail(
        fragments.user_head("user-0000007"), SESSION_ID.encode(), fragments.client("203.0.113.9", agent)
    )
    step = fragments.product_step("purchase", "https://shop.example/checkout/confirmation", product, 2)
    order = fragments.order(b"00000000-0000-4000-8000-000000000001")
    value = b"".join(
        (head, fragments.TimeFragments().of(round(at.timestamp() * 1000)), step + order, fragments.referrer(None), tail)
    )
    assert orjson.loads(value) == {
        "event_id": EVENT_ID,
        "event_time": "2026-11-29T12:00:01.250Z",
        "event_type": "purchase",
        "page_url": "https://shop.example/checkout/confirmation",
        "product_id": "sku-000042",
        "category": "shoes",
        "price": 59.99,
        "quantity": 2,
        "order_id": "00000000-0000-4000-8000-000000000001",
        "referrer": None,
        "user_id": "user-0000007",
        "session_id": SESSION_ID,
        "ip_address": "203.0.113.9",
        "user_agent": "Mozilla/5.0",
        "device": "mobile",
        "country": "DE",
        "schema_version": 1,
    }
    validate_event(value)
    assert fragments.event_id(head) == EVENT_ID
