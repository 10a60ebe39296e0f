"""The previous system's source format and its declared upcast onto contract v1 (rtap.contract.formats)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import orjson
import pytest
from pydantic import ValidationError

from rtap.contract import contract_fields
from rtap.contract.formats import (
    LegacyReader,
    legacy_session_id,
    reader,
    validate_source,
)
from rtap.contract.model import LEGACY_FORMAT
from rtap.errors import ContractError
from rtap.settings import KafkaSettings

CLICK = {
    "event_id": "0b9f5d4e-1c2a-4b3c-9d8e-7f6a5b4c3d2e",
    "user_id": "5c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
    "page_url": "http://www.e-commerce-example.com/produtos/eletronicos",
    "ip_address": "203.0.113.7",
    "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
    "timestamp": "2026-12-02T05:56:15.000654",
}
RECORD_MS = int(datetime(2026, 12, 2, 6, 0, tzinfo=UTC).timestamp() * 1000)


def read(*records: object, fast_path: bool = True, skew_s: float = 300.0) -> tuple[list[dict], list[str | None]]:
    payloads = [r if isinstance(r, bytes) else orjson.dumps(r) for r in records]
    legacy = LegacyReader(max_record_bytes=1 << 20, max_future_skew_s=skew_s, fast_path=fast_path)
    verdict = legacy.validate(payloads, np.full(len(payloads), RECORD_MS))
    rows = [{name: column[i].as_py() for name, column in verdict.columns.items()} for i in range(len(payloads))]
    return rows, verdict.errors.to_pylist()


def test_a_click_as_the_previous_producer_wrote_it_becomes_a_page_view() -> None:
    (row,), (error,) = read(CLICK)
    assert error is None
    assert set(row) == {f.name for f in contract_fields()}
    assert row["event_type"] == "page_view"
    assert row["event_time"] == datetime(2026, 12, 2, 5, 56, 15, tzinfo=UTC)  # UTC, milliseconds (654 us: 0 ms)
    assert row["session_id"] == legacy_session_id(CLICK["user_id"], row["event_time"])
    for name in ("event_id", "user_id", "page_url", "ip_address", "user_agent"):
        assert row[name] == CLICK[name]
    assert row["schema_version"] == 1
    assert all(row[name] is None for name in ("referrer", "device", "country", "product_id", "price", "order_id"))


def test_isoformat_without_a_fraction_is_read_and_the_reference_agrees() -> None:
    whole = {**CLICK, "timestamp": "2026-12-02T05:56:15"}
    (row,), (error,) = read(whole)
    assert error is None
    assert row["event_time"] == datetime(2026, 12, 2, 5, 56, 15, tzinfo=UTC)
    expected = validate_source(orjson.dumps(whole), LEGACY_FORMAT)
    assert {name: row[name] for name in expected if name != "schema_version"} == {
        name: value for name, value in expected.items() if name != "schema_version"
    }


def test_the_session_is_one_per_user_and_utc_day_and_the_same_for_a_replay() -> None:
    morning = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)
    assert legacy_session_id("u", morning) == legacy_session_id("u", morning.replace(hour=23))
    assert legacy_session_id("u", morning) != legacy_session_id("u", datetime(2026, 12, 3, 0, 0, tzinfo=UTC))
    assert legacy_session_id("u", morning) != legacy_session_id("v", morning)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"timestamp": "2026-12-02T05:56:15Z"}, "timestamp: does not match pattern"),
        ({"timestamp": "2026-02-30T05:56:15"}, "timestamp: not a valid date-time"),
        ({"timestamp": "2026-12-02T07:00:00"}, "timestamp: outside 1970-01-01 .. record timestamp + 300s"),
        ({"timestamp": "1969-12-31T23:59:59.9999"}, "timestamp: outside 1970-01-01 .. record timestamp + 300s"),
        ({"timestamp": None}, "timestamp: required field missing or null"),
        ({"event_id": "0b9f"}, "event_id: not a valid uuid"),
        ({"user_id": 5}, "user_id: expected string, got number"),
        ({"ip_address": "999.1.1.1"}, "ip_address: not a valid ipv4 or ipv6"),
    ],
)
def test_what_the_format_refuses_is_a_dead_letter_with_its_reason(change: dict, reason: str) -> None:
    for fast_path in (True, False):
        _, (error,) = read({**CLICK, **change}, fast_path=fast_path)
        assert error == reason


def test_the_fast_and_the_exact_path_agree_on_a_mixed_batch() -> None:
    batch = [CLICK, {**CLICK, "timestamp": "2026-12-02T05:56:15"}, b"{broken", {**CLICK, "page_url": ""}]
    assert read(*batch, fast_path=True) == read(*batch, fast_path=False)


def test_an_unknown_format_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ContractError, match=r"unknown source format 'v2'.*legacy-click\.v1"):
        reader("v2", max_record_bytes=1, max_future_skew_s=1)
    with pytest.raises(ValidationError, match="unknown source format 'nope'"):
        KafkaSettings(source_topics={"old": "nope"})
    with pytest.raises(ValidationError, match="already the input, the browser or the dead-letter topic"):
        KafkaSettings(source_topics={"clickstream.events": LEGACY_FORMAT})


def test_the_previous_topic_beside_rtaps_default_one_is_refused_as_kafka_would() -> None:
    """Kafka refuses clickstream_events on a cluster with clickstream.events (InvalidTopicException: the two
    collide in its metric names), so the settings say it first, with the way out."""
    with pytest.raises(ValidationError, match=r"topics clickstream_events and clickstream\.events collide"):
        KafkaSettings(source_topics={"clickstream_events": LEGACY_FORMAT})
    moved = KafkaSettings(topic="clickstream.events.v1", source_topics={"clickstream_events": LEGACY_FORMAT})
    assert moved.input_topics == {
        "clickstream.events.v1": "clickstream-event.v1",
        "clickstream.browser": "browser-event.v1",
        "clickstream_events": LEGACY_FORMAT,
    }
