"""The one-minute aggregates against counting by hand, with counting, deduplication and closing forced often."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtap.generate import minutes as minutes_module
from rtap.generate.minutes import MINUTE_MS, Minutes, PageViews

PAGES = ["/a", "/b", "/c"]
TYPES = ["page_view", "search", "purchase"]
# (time_ms, type code, page code or -1, user code): three minutes, a few users.
records_strategy = st.lists(
    st.tuples(st.integers(0, 3 * MINUTE_MS - 1), st.integers(0, 2), st.integers(-1, 2), st.integers(0, 5)),
    max_size=60,
)


def by_hand(records: list[tuple[int, int, int, int]]) -> tuple[dict, dict]:
    views: Counter[tuple[int, str]] = Counter()
    viewers: dict[tuple[int, str], set[int]] = {}
    events: Counter[tuple[int, str]] = Counter()
    users: dict[tuple[int, str], set[int]] = {}
    for time_ms, type_code, page_code, user in records:
        minute = time_ms - time_ms % MINUTE_MS
        events[minute, TYPES[type_code]] += 1
        users.setdefault((minute, TYPES[type_code]), set()).add(user)
        if page_code >= 0:
            views[minute, PAGES[page_code]] += 1
            viewers.setdefault((minute, PAGES[page_code]), set()).add(user)
    pages = {key: PageViews(count, len(viewers[key])) for key, count in views.items()}
    types = {key: (count, len(users[key]), 0, 0) for key, count in events.items()}
    return pages, types


@settings(max_examples=100, deadline=None)
@given(records_strategy, st.integers(1, 7))
def test_rows_equal_counting_by_hand(records: list[tuple[int, int, int, int]], chunk: int) -> None:
    """Records in time order, in chunks; each minute is closed as soon as a later minute begins."""
    records = sorted(records)
    aggregates = Minutes()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(minutes_module, "COMPACT_PAIRS", 2)
        patch.setattr(minutes_module, "COUNT_EVERY", 3)
        for start in range(0, len(records), chunk):
            part = records[start : start + chunk]
            aggregates.add(*(list(column) for column in zip(*part, strict=True)))
            aggregates.close(part[-1][0] - part[-1][0] % MINUTE_MS, PAGES, TYPES)
        pages, types = by_hand(records)
        assert aggregates.page_rows(PAGES) == pages
        assert aggregates.type_rows(TYPES) == types


def test_orders_and_revenue_belong_to_the_purchases_of_their_minute() -> None:
    aggregates = Minutes()
    purchase = TYPES.index("purchase")
    aggregates.add([10, 20, MINUTE_MS + 5], [purchase, purchase, purchase], [-1, -1, -1], [1, 2, 1])
    aggregates.add_purchase(10, "o1", 1_500_000)
    aggregates.add_purchase(20, "o1", 500_000)  # a second line of the same order
    aggregates.add_purchase(MINUTE_MS + 5, None, 250_000)  # revenue without an order id
    aggregates.close(MINUTE_MS, PAGES, TYPES)
    assert aggregates.closed_types == {(0, "purchase"): (2, 2, 1, 2_000_000)}
    assert aggregates.type_rows(TYPES) == {
        (0, "purchase"): (2, 2, 1, 2_000_000),
        (MINUTE_MS, "purchase"): (1, 1, 0, 250_000),
    }
    assert aggregates.page_rows(PAGES) == {}
