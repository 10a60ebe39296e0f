"""The server's facts on each record: the client's address, anonymised by default,
overwriting whatever a browser claimed; the session as the key."""

from __future__ import annotations

import ipaddress

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtap.addresses import parse_address
from rtap.collect.api import Reason, Refused
from rtap.collect.records import anonymize, encode, kafka_key, server_fields
from rtap.contract.model import FORMAT_PATTERNS

IPV4 = __import__("re").compile(FORMAT_PATTERNS["ipv4"])
IPV6 = __import__("re").compile(FORMAT_PATTERNS["ipv6"])


@pytest.mark.parametrize(
    ("address", "anonymous"),
    [
        ("203.0.113.77", "203.0.113.0"),
        ("2001:db8:85a3:8d3:1319:8a2e:370:7348", "2001:db8:85a3::"),
        ("::ffff:198.51.100.9", "198.51.100.0"),
        ("::1", "::"),
    ],
)
def test_the_last_octet_or_the_last_80_bits_are_zeroed(address: str, anonymous: str) -> None:
    parsed = parse_address(address)
    assert parsed is not None
    assert str(anonymize(parsed)) == anonymous


@given(st.ip_addresses())
def test_an_anonymised_address_is_one_the_contract_accepts_and_keeps_its_network(address) -> None:
    parsed = parse_address(str(address))
    assert parsed is not None
    hidden = anonymize(parsed)
    text = str(hidden)
    assert IPV4.search(text) or IPV6.search(text)
    prefix = 24 if hidden.version == 4 else 48
    assert hidden in ipaddress.ip_network(f"{parsed}/{prefix}", strict=False)


def test_server_fields_overwrite_the_browsers_and_the_session_is_the_key() -> None:
    fields = server_fields(
        received_at="2026-12-02T06:00:00.500Z",
        sent_at="2026-12-02T08:00:00.000Z",
        ip=parse_address("203.0.113.77"),
        anonymize_ip=True,
        user_agent="UA",
        site="demo",
    )
    event = {"type": "page_view", "session_id": "s", "anonymous_id": "a", "ip": "6.6.6.6", "received_at": "1999"}
    ((key, value),) = encode([event], fields, max_event_bytes=1024)
    assert key == b"s"
    assert orjson.loads(value) == {
        "type": "page_view",
        "session_id": "s",
        "anonymous_id": "a",
        "ip": "203.0.113.0",
        "received_at": "2026-12-02T06:00:00.500Z",
        "sent_at": "2026-12-02T08:00:00.000Z",
        "user_agent": "UA",
        "site": "demo",
    }
    assert kafka_key({"session_id": 5, "anonymous_id": "a"}) == b"a"
    assert kafka_key({}) is None
    kept = server_fields(
        received_at="t", sent_at=None, ip=parse_address("203.0.113.77"), anonymize_ip=False, user_agent=None, site="x"
    )
    assert kept["ip"] == "203.0.113.77"


def test_an_event_too_large_as_written_refuses_the_request() -> None:
    with pytest.raises(Refused) as caught:
        encode([{"a": "x" * 10}, {"a": "x" * 2000}], {"site": "s"}, max_event_bytes=1024)
    assert caught.value.reason == Reason.EVENT_TOO_LARGE
    assert caught.value.events == 2


@pytest.mark.parametrize("depth", [254, 300, 1023])
def test_an_event_nested_deeper_than_orjson_writes_is_refused_as_wrong_shape(depth: int) -> None:
    event = {"properties": orjson.loads(b"[" * depth + b"]" * depth)}  # what a request of that depth parses to
    with pytest.raises(Refused) as caught:
        encode([{"a": 1}, event], {"site": "s"}, max_event_bytes=1 << 20)
    assert caught.value.reason == Reason.WRONG_SHAPE
    assert caught.value.status == 400
    assert "event 1" in caught.value.message
    assert caught.value.events == 2
