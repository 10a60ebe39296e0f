"""The browser tracker's source format (browser-event.v1) and its declared upcast onto contract v1, with the
device clock corrected (rtap.contract.formats): the job's vectorised reader against the reference upcast."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rtap.contract import contract_fields
from rtap.contract.formats import BrowserReader, browser_event_time, reader, validate_source
from rtap.contract.model import BROWSER_FORMAT
from rtap.errors import ContractError
from rtap.settings import KafkaSettings
from tests.support.strategies import any_value, odd_times

RECEIVED = datetime(2026, 12, 2, 6, 0, 0, 500000, tzinfo=UTC)
RECORD_MS = int(datetime(2026, 12, 2, 6, 0, 1, tzinfo=UTC).timestamp() * 1000)
EVENT = {
    "event_id": "0b9f5d4e-1c2a-4b3c-9d8e-7f6a5b4c3d2e",
    "type": "add_to_cart",
    # The device's clock is two hours ahead: it created the event 10 s before it sent it.
    "created_at": "2026-12-02T07:59:50.000Z",
    "sent_at": "2026-12-02T08:00:00.000Z",
    "received_at": "2026-12-02T06:00:00.500Z",
    "anonymous_id": "anon-1",
    "session_id": "sess-1",
    "url": "http://127.0.0.1:8070/shop/product.html?id=p-7",
    "referrer": "http://127.0.0.1:8070/shop/",
    "title": "Espresso machine",
    "ip": "203.0.113.0",
    "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
    "site": "demo",
    "device": "desktop",
    "product_id": "p-7",
    "category": "kitchen",
    "price": 149.9,
    "quantity": 2,
}


def read(*records: object, fast_path: bool = True, skew_s: float = 300.0) -> tuple[list[dict], list[str | None]]:
    payloads = [r if isinstance(r, bytes) else orjson.dumps(r) for r in records]
    browser = BrowserReader(max_record_bytes=1 << 20, max_future_skew_s=skew_s, fast_path=fast_path)
    verdict = browser.validate(payloads, np.full(len(payloads), RECORD_MS))
    rows = [{name: column[i].as_py() for name, column in verdict.columns.items()} for i in range(len(payloads))]
    return rows, verdict.errors.to_pylist()


def test_a_tracker_event_becomes_a_v1_event_at_the_corrected_time() -> None:
    (row,), (error,) = read(EVENT)
    assert error is None
    assert set(row) == {f.name for f in contract_fields()}
    # 10 s before the collector received it, whatever the device's clock said.
    assert row["event_time"] == RECEIVED - timedelta(seconds=10)
    assert row["event_type"] == "add_to_cart"
    assert row["user_id"] == "anon-1"
    assert row["page_url"] == EVENT["url"]
    assert row["ip_address"] == "203.0.113.0"
    assert row["schema_version"] == 1
    assert row["country"] is None
    for name in ("event_id", "session_id", "referrer", "user_agent", "device", "product_id", "category", "quantity"):
        assert row[name] == EVENT[name]
    assert float(row["price"]) == 149.9
    assert row == validate_source(orjson.dumps(EVENT), BROWSER_FORMAT)


@pytest.mark.parametrize(
    ("created_at", "sent_at"),
    [
        (None, "2026-12-02T08:00:00.000Z"),
        ("2026-12-02T07:59:50.000Z", None),
        ("yesterday", "2026-12-02T08:00:00.000Z"),
        ("2026-12-02T07:59:50.000Z", 17),
        ("2026-02-30T07:59:50.000Z", "2026-12-02T08:00:00.000Z"),
        ("2026-12-02T08:00:10.000Z", "2026-12-02T08:00:00.000Z"),  # sent before created: a clock set back
    ],
)
def test_without_two_readable_device_times_in_order_the_event_time_is_the_receive_time(
    created_at: object, sent_at: object
) -> None:
    assert browser_event_time(RECEIVED, created_at, sent_at) == RECEIVED.timestamp() * 1000
    if isinstance(sent_at, int):
        return  # the schema refuses a sent_at that is no string: see the reasons below
    rows, errors = read({**EVENT, "created_at": created_at, "sent_at": sent_at})
    assert errors == [None]
    assert rows[0]["event_time"] == RECEIVED


def test_device_times_with_offsets_are_read_as_the_instants_they_name() -> None:
    moved = {**EVENT, "created_at": "2026-12-02T09:59:50+02:00", "sent_at": "2026-12-02T08:00:00.000Z"}
    (row,), _ = read(moved)
    assert row["event_time"] == RECEIVED - timedelta(seconds=10)


def test_an_upper_case_id_is_the_same_id_in_the_reader_and_the_reference() -> None:
    """Replay compares the reference's id with the stored one (``toString`` of a UUID: lower case)."""
    shouted = orjson.dumps({**EVENT, "event_id": str(EVENT["event_id"]).upper()})
    (row,), _ = read(shouted)
    assert row["event_id"] == validate_source(shouted, BROWSER_FORMAT)["event_id"] == EVENT["event_id"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"type": "click"}, "type: must be one of"),
        ({"event_id": "nope"}, "event_id: not a valid uuid"),
        ({"anonymous_id": None}, "anonymous_id: required field missing or null"),
        ({"url": ""}, "url: shorter than 1"),
        ({"ip": "203.0.113.999"}, "ip: not a valid ipv4 or ipv6"),
        ({"type": "purchase", "order_id": None}, "order_id: required when type is purchase"),
        ({"sent_at": 17}, "sent_at: expected string, got number"),
        ({"received_at": "2026-12-02T08:00:00.500Z"}, "event_time: outside 1970-01-01 .. record timestamp + 300s"),
        (
            {"created_at": "1900-01-01T00:00:00Z", "received_at": "1980-01-01T00:00:00Z"},
            "event_time: outside 1970-01-01 .. record timestamp + 300s",
        ),
    ],
)
def test_what_the_format_refuses_is_a_dead_letter_with_its_reason(change: dict, reason: str) -> None:
    for fast_path in (True, False):
        _, (error,) = read({**EVENT, **change}, fast_path=fast_path)
        assert error is not None
        assert error.startswith(reason), error


def test_the_format_is_known_and_always_an_input_topic() -> None:
    assert isinstance(reader(BROWSER_FORMAT, max_record_bytes=1024, max_future_skew_s=1), BrowserReader)
    kafka = KafkaSettings(_env_file=None)  # type: ignore[call-arg]
    assert kafka.input_topics[kafka.browser_topic] == BROWSER_FORMAT
    with pytest.raises(ContractError):
        validate_source(orjson.dumps({**EVENT, "site": ""}), BROWSER_FORMAT)


# The reader and the reference agree on anything: tracker events with fields removed, nulled or replaced by odd
# values, and device times of every shape (the clock correction's inputs are the browser's to choose).
BROWSER_FIELDS = list(EVENT)
device_times = st.one_of(
    odd_times,
    st.datetimes(min_value=datetime(1960, 1, 1), max_value=datetime(2100, 1, 1)).map(
        lambda d: d.isoformat(timespec="milliseconds") + "Z"
    ),
)


@st.composite
def browser_records(draw: st.DrawFn) -> dict[str, object]:
    record: dict[str, object] = dict(EVENT)
    record["received_at"] = draw(
        st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2026, 12, 2, 6)).map(
            lambda d: d.isoformat(timespec="milliseconds") + "Z"
        )
    )
    record["created_at"] = draw(device_times)
    record["sent_at"] = draw(device_times)
    # Any spelling of the id: an app may send upper case (Swift's UUID().uuidString) in the tracker's format.
    record["event_id"] = draw(st.sampled_from([str.lower, str.upper, str.title]))(str(EVENT["event_id"]))
    for name in draw(st.lists(st.sampled_from(BROWSER_FIELDS), max_size=3, unique=True)):
        if draw(st.booleans()):
            record.pop(name, None)
        else:
            record[name] = draw(st.one_of(any_value, device_times))
    return record


def reference(payload: bytes) -> dict[str, object] | None:
    try:
        event = validate_source(payload, BROWSER_FORMAT)
    except ContractError:
        return None
    moment = event["event_time"]
    assert isinstance(moment, datetime)
    return event if 0 <= (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1) <= RECORD_MS else None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batch=st.lists(browser_records(), min_size=5, max_size=40), fast_path=st.booleans())
@example(
    batch=[{**EVENT, "created_at": "0000-01-01T00:00:00Z"}, {**EVENT, "sent_at": "2026-12-02T23:59:60Z"}],
    fast_path=True,
)
def test_the_reader_and_the_reference_upcast_agree(batch, fast_path: bool) -> None:
    payloads = [orjson.dumps(r) for r in batch]
    rows, errors = read(*payloads, fast_path=fast_path, skew_s=0)
    for payload, row, error in zip(payloads, rows, errors, strict=True):
        expected = reference(payload)
        assert (error is None) == (expected is not None), (payload, error)
        if expected is not None:
            assert row == expected, payload
