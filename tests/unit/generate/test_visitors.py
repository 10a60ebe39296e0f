"""The visitors: humans' devices, countries, addresses and referrers; bots that click fast from one address."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.support.clickstream import Run, parsed, try_parse


def test_clients_have_devices_countries_and_both_ip_versions(clean: Run) -> None:
    events = parsed(clean.records)
    assert {e["device"] for e in events} == {"desktop", "mobile", "tablet"}
    assert len({e["country"] for e in events}) > 5
    assert any(":" in e["ip_address"] for e in events)
    assert any("." in e["ip_address"] for e in events)
    landing_referrers = Counter(
        e["referrer"] for e in events if e["referrer"] is None or "shop.example" not in e["referrer"]
    )
    assert landing_referrers[None] > 0
    assert len(landing_referrers) > 3


def test_bots_click_much_faster_than_humans_from_one_ip(dirty: Run) -> None:
    events = [e for e in (try_parse(r.value) for r in dirty.records) if e is not None]
    per_user = Counter(e["user_id"] for e in events)
    bots = dirty.generator.bot_user_ids
    assert bots
    bot_rate = sum(per_user[u] for u in bots) / len(bots)
    humans = [u for u in per_user if u not in bots]
    human_rate = sum(per_user[u] for u in humans) / len(humans)
    assert bot_rate > 20 * human_rate
    for bot in bots:
        assert len({e["ip_address"] for e in events if e["user_id"] == bot}) == 1
    assert sum(per_user[u] for u in bots) / len(events) == pytest.approx(0.05, rel=0.15)
