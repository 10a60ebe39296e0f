"""Hypothesis strategies: valid contract-v1 events and mutations of them (missing, null, wrong type, odd
strings, numbers and timestamps, extra fields)."""

from __future__ import annotations

from hypothesis import strategies as st

from rtap.contract import contract_fields
from tests.support.records import event

FIELDS = [f.name for f in contract_fields()]
odd_strings = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", " ", "\x00", "é", "😀", "page_view", "purchase", "DE", "de", "1.2.3.4", "::1", "999.0.0.1"]),
)
odd_numbers = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, 1, 1.0, 2.5, -0.0, 1e9, 1e9 + 1, 999_999.999, 10**6, 10**6 + 1]),
)
odd_times = st.one_of(
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.sampled_from(
        [
            "2026-11-29T12:00:00Z",
            "2026-11-29T12:00:00.123456789+05:30",
            "2026-11-29 12:00:00-01:00",
            "2026-11-29t12:00:00z",
            "2026-11-29T12:00:00",
            "2026-11-29",
            "2026-13-01T00:00:00Z",
            "2026-11-29T24:00:00Z",
            "2026-11-29T23:59:60Z",
            "1969-12-31T23:59:59Z",
            "2026-11-29T12:00:00+24:00",
        ]
    ),
)
any_value = st.one_of(
    st.none(),
    st.booleans(),
    odd_strings,
    odd_numbers,
    odd_times,
    st.lists(st.integers(-(2**63), 2**63 - 1), max_size=2),
)


@st.composite
def records(draw: st.DrawFn) -> dict[str, object]:
    record: dict[str, object] = event(draw(st.integers(0, 10**6)))
    if draw(st.booleans()):
        record.update(
            event_type="purchase",
            product_id=draw(odd_strings),
            price=draw(odd_numbers),
            quantity=draw(odd_numbers),
            order_id="o1",
        )
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=3, unique=True)):
        if draw(st.booleans()):
            record.pop(name, None)
        else:
            record[name] = draw(any_value)
    if draw(st.booleans()):
        record["extra_" + draw(st.text(max_size=5))] = draw(any_value)
    return record
