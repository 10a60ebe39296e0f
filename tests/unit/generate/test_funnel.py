"""The funnel: sessions walk it with the named ratios, and purchases are complete orders."""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import Decimal

import pytest

from rtap.generate import funnel
from tests.support.clickstream import Run, parsed


def sessions_of(generated: Run) -> list[list[str]]:
    """Event types per session, for sessions that started in the first half (so nearly all are over)."""
    events = parsed(generated.records)
    by_session: dict[str, list[str]] = defaultdict(list)
    started: dict[str, int] = {}
    for index, event in enumerate(events):
        started.setdefault(event["session_id"], index)
        by_session[event["session_id"]].append(event["event_type"])
    return [types for session, types in by_session.items() if started[session] < len(events) // 2]


def transitions(sessions: list[list[str]]) -> dict[str, Counter[str]]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for types in sessions:
        for current, following in zip(types, [*types[1:], "end"], strict=True):
            counts[current][following] += 1
    return counts


def share(counter: Counter[str], *keys: str) -> float:
    return sum(counter[key] for key in keys) / sum(counter.values())


def test_sessions_follow_the_funnel(clean: Run) -> None:
    sessions = sessions_of(clean)
    assert all(types[0] == "page_view" for types in sessions)
    bounced = sum(1 for types in sessions if len(types) == 1) / len(sessions)
    assert bounced == pytest.approx(funnel.BOUNCE_RATE, abs=0.03)
    after = transitions(sessions)
    assert share(after["checkout"], "purchase") == pytest.approx(funnel.CHECKOUT_TO_PURCHASE, abs=0.05)
    assert share(after["search"], "end") == pytest.approx(funnel.SEARCH_ABANDON, abs=0.03)
    product_to_cart = 1 - funnel.PRODUCT_LEAVE - funnel.PRODUCT_TO_PRODUCT - funnel.PRODUCT_TO_PAGE
    assert share(after["product_view"], "add_to_cart") == pytest.approx(product_to_cart, abs=0.03)
    assert share(after["add_to_cart"], "remove_from_cart") == pytest.approx(funnel.CART_REMOVE, abs=0.02)
    assert share(after["add_to_cart"], "checkout") == pytest.approx(funnel.CART_CHECKOUT, abs=0.04)
    # Each step of the funnel loses visitors.
    reached = Counter(step for types in sessions for step in set(types))
    assert reached["page_view"] > reached["product_view"] > reached["add_to_cart"] > reached["checkout"]
    assert reached["checkout"] > reached["purchase"] > 0


def test_purchases_are_complete_orders(clean: Run) -> None:
    purchases = [e for e in parsed(clean.records) if e["event_type"] == "purchase"]
    assert purchases
    for event in purchases:
        assert event["price"] == event["price"].quantize(Decimal("0.01"))
        assert event["price"] > 0
        assert event["quantity"] >= 1
        assert event["product_id"]
        assert event["order_id"]
    lines = Counter(e["order_id"] for e in purchases)
    assert max(lines.values()) > 1  # a cart of several products is one order of several lines
    sessions_per_order = {e["order_id"]: e["session_id"] for e in purchases}
    assert all(sessions_per_order[e["order_id"]] == e["session_id"] for e in purchases)
