"""Hostile Kafka records through the job's transforms: each one is a dead letter with a reason, none raises.

Every hypothesis example is one *batch* of hostile records classified in one call, as the job does. The records
are built so that each breaks the contract for a known reason (random bytes, beyond ``max_record_bytes``, deep
nesting, wrong types, unicode edge cases, numbers out of range, timestamps outside the accepted window); the
assertion is only that the job classifies them all as dead letters, keeps the payload, and says why.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtap.contract import contract_fields
from rtap.contract.vocabulary import ACCEPTED, DEAD_LETTER
from rtap.settings import StreamSettings
from tests.support.records import RECORD_TIME, classify_records, event

STREAM = StreamSettings()
LIMITS: dict[str, Any] = {
    "watermark_delay_s": STREAM.watermark_delay_s,
    "max_record_bytes": STREAM.max_record_bytes,
    "max_future_skew_s": STREAM.max_future_skew_s,
}
FIELDS = {f.name: f for f in contract_fields()}
# Deeper than any parser's default limit (Jackson's is 1000): the probe must hit the refusal path.
DEEPEST = 10_000
BATCHES = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _valid(n: int) -> dict[str, Any]:
    return event(n, event_time=RECORD_TIME.isoformat(timespec="milliseconds").replace("+00:00", "Z"))


def _with_raw(field: str, raw_json: bytes, n: int = 1) -> bytes:
    """A valid event whose ``field`` holds ``raw_json`` verbatim (text orjson would refuse to write)."""
    doc = _valid(n)
    doc[field] = "__RAW__"
    return orjson.dumps(doc).replace(b'"__RAW__"', raw_json)


# orjson writes 64-bit integers only; larger ones are written as raw text where they matter (out_of_range).
_int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
random_bytes = st.binary(max_size=256)

oversized = st.integers(min_value=1, max_value=3 * STREAM.max_record_bytes).map(
    lambda extra: orjson.dumps({**_valid(1), "padding": "x" * (STREAM.max_record_bytes + extra)})
)


@st.composite
def deep_nesting(draw: st.DrawFn) -> bytes:
    depth = draw(st.integers(min_value=1, max_value=DEEPEST))
    nested = b"[" * depth + b"]" * depth
    where = draw(st.sampled_from(["bare", "object", *(f.name for f in FIELDS.values())]))
    if where == "bare":
        return nested
    if where == "object":  # objects nested in objects, as the whole document
        return b'{"a":' * depth + b"1" + b"}" * depth
    return _with_raw(where, nested)


_not_string = st.one_of(
    st.booleans(),
    _int64,
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.text(max_size=3), max_size=3),
    st.dictionaries(st.text(max_size=3), _int64, max_size=2),
)
_not_number = st.one_of(
    st.booleans(),
    st.text(max_size=8),
    st.lists(_int64, max_size=3),
    st.dictionaries(st.text(max_size=3), _int64, max_size=2),
)


@st.composite
def wrong_type(draw: st.DrawFn) -> bytes:
    field = draw(st.sampled_from(list(FIELDS.values())))
    value: object = draw(_not_number if field.json_type in {"number", "integer"} else _not_string)
    if field.required and draw(st.booleans()):
        value = None  # null where a value is required
    return orjson.dumps({**_valid(1), field.name: value})


# Characters that often slip past validators: NUL, RTL override, zero-width and BOM, line/paragraph separators,
# a combining mark, an emoji (astral plane), a noncharacter.
EDGE_CHARS = [
    "\x00",
    "\u202e",
    "\u200d",
    "\ufeff",
    "\u2028",
    "\u2029",
    "\u0085",
    "\n",
    "\u0301",
    "\U0001f600",
    "\uffff",
]
CONSTRAINED = {
    "event_id": "00000000-0000-4000-8000-000000000001",
    "event_type": "page_view",
    "country": "DE",
    "device": "mobile",
    "ip_address": "192.0.2.1",
    "event_time": "2026-11-29T12:00:00.000Z",
}


@st.composite
def unicode_edge(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["in_constrained_field", "lone_surrogate", "raw_control_byte"]))
    if kind == "lone_surrogate":  # valid JSON syntax, but no Unicode scalar value: not a JSON text
        surrogate = draw(st.integers(min_value=0xD800, max_value=0xDFFF))
        return _with_raw(
            draw(st.sampled_from(["page_url", "user_agent", "referrer"])), f'"a\\u{surrogate:04x}b"'.encode()
        )
    if kind == "raw_control_byte":  # an unescaped control character inside a string is invalid JSON
        byte = draw(st.integers(min_value=0, max_value=0x1F))
        return _with_raw("page_url", b'"/a' + bytes([byte]) + b'b"')
    field, good = draw(st.sampled_from(sorted(CONSTRAINED.items())))
    char = draw(st.sampled_from(EDGE_CHARS))
    at = draw(st.integers(min_value=0, max_value=len(good)))
    return orjson.dumps({**_valid(1), field: good[:at] + char + good[at:]})


@st.composite
def out_of_range(draw: st.DrawFn) -> bytes:
    field = draw(st.sampled_from(["price", "quantity"]))
    if field == "price":
        raw = draw(
            st.one_of(
                st.sampled_from(["1e400", "-1e400", "1e309", "-0.01", "1" + "0" * 400]),
                st.integers(min_value=1_000_000_001, max_value=10**400).map(str),
                st.integers(max_value=-1).map(str),
            )
        )
    else:
        raw = draw(
            st.one_of(
                st.sampled_from(["-0", "0", "1e400", "2147483648", "-2147483649", "9" * 400]),
                st.integers(max_value=0).map(str),
                st.integers(min_value=1_000_001, max_value=10**400).map(str),
            )
        )
    return _with_raw(field, raw.encode())


_FUTURE = RECORD_TIME + timedelta(seconds=STREAM.max_future_skew_s, milliseconds=1)


@st.composite
def far_timestamp(draw: st.DrawFn) -> bytes:
    moment = draw(
        st.one_of(
            st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(1969, 12, 31, 23, 59, 59, 999_000)),
            st.datetimes(min_value=_FUTURE.replace(tzinfo=None), max_value=datetime(9999, 12, 31, 23, 59, 59)),
        )
    )
    text = moment.replace(microsecond=moment.microsecond // 1000 * 1000).isoformat(timespec="milliseconds") + "Z"
    text = draw(st.sampled_from([text, "+275760-09-13T00:00:00.000Z", "10000-01-01T00:00:00Z"]))
    return orjson.dumps({**_valid(1), "event_time": text})


hostile = st.one_of(
    random_bytes, oversized, deep_nesting(), wrong_type(), unicode_edge(), out_of_range(), far_timestamp()
)


def classify(
    payloads: list[bytes], columns: tuple[str, ...] = ("kafka_offset", "status", "error", "raw", "raw_size")
) -> list[dict[str, Any]]:
    """One call over the whole batch, as the job makes it."""
    out = classify_records([(0, offset, payload) for offset, payload in enumerate(payloads)], **LIMITS)
    return sorted(out.select(list(columns)).to_pylist(), key=lambda row: int(row["kafka_offset"]))


@BATCHES
@given(payloads=st.lists(hostile, min_size=1, max_size=40))
def test_every_hostile_record_is_a_dead_letter_with_a_reason(payloads: list[bytes]) -> None:
    rows = classify(payloads)
    assert [row["kafka_offset"] for row in rows] == list(range(len(payloads))), "a record was lost or doubled"
    for payload, row in zip(payloads, rows, strict=True):
        assert row["status"] == DEAD_LETTER, (payload[:200], row["error"])
        assert row["error"], payload[:200]
        # Kept whole up to the record size limit (beyond it a record is never valid), with its real size.
        assert row["raw"] == payload[: STREAM.max_record_bytes]
        assert row["raw_size"] == len(payload)


def test_the_named_extremes_are_dead_letters() -> None:
    """The cases the issue names, each once, whatever hypothesis happens to draw."""
    cases = {
        b"[" * DEEPEST + b"]" * DEEPEST: "invalid JSON",
        # Objects nested deeper than msgspec follows (a RecursionError once failed the whole batch).
        b'{"a":' * DEEPEST + b"1" + b"}" * DEEPEST: "invalid JSON",
        _with_raw("page_url", b"[" * DEEPEST + b"]" * DEEPEST): "invalid JSON",
        _with_raw("price", b"1e400"): "invalid JSON (number is infinity",  # beyond a double: orjson refuses it
        _with_raw("quantity", b"-0"): "quantity: below 1",
        _with_raw("quantity", b"1" + b"0" * 40): "quantity: number out of range",
        _with_raw("page_url", b'"\\ud800"'): "invalid JSON",
        _with_raw("page_url", b'"a\x00b"'): "invalid JSON",
        _with_raw("event_time", b'"9999-12-31T23:59:59Z"'): "event_time: outside 1970-01-01",
        _with_raw("event_time", b'"0001-01-01T00:00:00Z"'): "event_time: outside 1970-01-01",
        _with_raw("event_id", b'"00000000-0000-4000-8000-000000000001\\u0000"'): "event_id: not a valid uuid",
        b"x" * (STREAM.max_record_bytes + 1): f"record too large: {STREAM.max_record_bytes + 1} bytes",
    }
    rows = classify(list(cases))
    wrong = [
        (payload[-120:], reason, row["status"], row["error"])
        for (payload, reason), row in zip(cases.items(), rows, strict=True)
        if row["status"] != DEAD_LETTER or not row["error"].startswith(reason)
    ]
    assert not wrong


_json_scalar = st.one_of(
    st.none(), st.booleans(), _int64, st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20)
)
_json_value = st.recursive(
    _json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)
_unknown_name = st.text(min_size=1, max_size=20).filter(lambda name: name not in FIELDS)


@BATCHES
@given(extras=st.lists(st.dictionaries(_unknown_name, _json_value, min_size=1, max_size=3), min_size=1, max_size=30))
def test_unknown_extra_fields_are_accepted(extras: list[dict[str, Any]]) -> None:
    """Forward compatibility: a producer on a newer contract may add fields; v1 readers ignore them."""
    payloads = [orjson.dumps({**extra, **_valid(n)}) for n, extra in enumerate(extras)]
    rows = classify(payloads)
    assert [(row["status"], row["error"]) for row in rows] == [(ACCEPTED, None)] * len(payloads)


def test_free_text_keeps_unicode_edge_cases_intact() -> None:
    """Escaped NUL, RTL override, surrogate pairs and emoji in free text are data, not errors, and survive."""
    texts = ["/a\x00b", "/\u202eevil", "/\U0001f600\u200d\U0001f4bb", "/\ufeffbom", "/e\u0301"]
    payloads = [orjson.dumps({**_valid(n), "page_url": text}) for n, text in enumerate(texts)]
    payloads.append(_with_raw("page_url", b'"/\\ud83d\\ude00"', n=len(texts)))  # an escaped surrogate pair
    got = classify(payloads, ("kafka_offset", "status", "page_url"))
    assert [(row["status"], row["page_url"]) for row in got] == [(ACCEPTED, t) for t in [*texts, "/\U0001f600"]]


def test_invalid_utf8_inside_a_string_is_a_dead_letter() -> None:
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(_with_raw("page_url", b'"/\xff\xfe"'))
    row = classify([_with_raw("page_url", b'"/\xff\xfe"')])[0]
    assert row["status"] == DEAD_LETTER


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event_id", "00000000-0000-4000-8000-000000000001\n"),
        ("event_time", "2026-11-29T12:00:00Z\n"),
        ("country", "DE\n"),
        ("country", "DE\u2028"),
        ("ip_address", "192.0.2.1\n"),
    ],
)
def test_a_trailing_line_terminator_in_a_patterned_field_is_a_dead_letter(field: str, value: str) -> None:
    row = classify([orjson.dumps({**_valid(1), field: value})])[0]
    assert row["status"] == DEAD_LETTER
