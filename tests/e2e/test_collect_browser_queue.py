"""tracker.js in a real headless Chromium against a collector whose answers each test scripts: what it sends,
when, and what it does with every kind of answer (2xx, a 4xx that says never, 429/503 with Retry-After, no
answer), the bounded localStorage queue, the beacon when the page goes away, consent.

No stack is needed: tests/support/scripted_collector.py serves the real tracker.js and records its requests.
The real collector, Kafka and the warehouse are in tests/e2e/test_collect_browser.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from tests.support.demo_shop import chromium
from tests.support.scripted_collector import DROP, WRITE_KEY, Answer, ScriptedCollector, scripted_collector

pytestmark = pytest.mark.browser

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
RFC3339_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
QUEUE_KEY = f"rtap_queue_{WRITE_KEY}"
# Settings that keep a test's events together until it says flush: no page view of its own, no timer.
QUIET: dict[str, str | int] = {"auto_page": "false", "flush_interval": 600_000}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as running:
        yield running


@pytest.fixture
def collector() -> Iterator[ScriptedCollector]:
    with scripted_collector() as running:
        yield running


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh profile per test: its own cookies and localStorage."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        yield context.new_page()
    finally:
        context.close()


def track(page: Page, count: int, kind: str = "product_view") -> list[str]:
    ids: list[str] = page.evaluate(
        "([n, kind]) => Array.from({length: n}, (_, i) => rtap.track(kind, {product_id: `sku-${i}`}))", [count, kind]
    )
    return ids


def status(page: Page) -> dict[str, Any]:
    found: dict[str, Any] = page.evaluate("rtap.status()")
    return found


def stored(page: Page) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = page.evaluate(f"JSON.parse(localStorage.getItem('{QUEUE_KEY}') || '[]')")
    return found


def rtap_keys(page: Page) -> dict[str, list[str]]:
    return page.evaluate(
        "({storage: Object.keys(localStorage).filter(k => k.startsWith('rtap_')).sort(),"
        " cookies: document.cookie.split('; ').filter(c => c.startsWith('rtap_'))})"
    )


def wait_status(page: Page, condition: str) -> None:
    page.wait_for_function(f"(() => {{ const s = rtap.status(); return {condition}; }})", timeout=10_000)


def test_a_full_batch_goes_at_once_with_every_field_and_one_clock(collector: ScriptedCollector, page: Page) -> None:
    page.goto(collector.page_url(batch_size=3, **QUIET))
    ids = track(page, 3)
    (request,) = collector.wait_for(1, "/v1/batch")
    assert request.content_type.startswith("text/plain")  # a simple request: no CORS preflight
    assert request.body["write_key"] == WRITE_KEY
    assert RFC3339_MS.match(request.body["sent_at"])
    events = request.events
    assert [e["event_id"] for e in events] == ids
    assert all(UUID.match(i) for i in ids)
    assert len(set(ids)) == 3
    first = events[0]
    assert first["type"] == "product_view"
    assert first["product_id"] == "sku-0"
    assert first["url"] == page.url
    assert first["title"] == "tracker test"
    assert first["device"] == "desktop"
    assert UUID.match(first["anonymous_id"])
    assert UUID.match(first["session_id"])
    assert {(e["anonymous_id"], e["session_id"]) for e in events} == {(first["anonymous_id"], first["session_id"])}
    for event in events:
        assert RFC3339_MS.match(event["created_at"])
        assert parse(event["created_at"]) <= parse(request.body["sent_at"])
    wait_status(page, "s.queued === 0")
    assert stored(page) == []
    assert f"rtap_aid={first['anonymous_id']}" in rtap_keys(page)["cookies"]


def test_a_part_batch_goes_after_the_interval(collector: ScriptedCollector, page: Page) -> None:
    page.goto(collector.page_url(batch_size=20, flush_interval=300, auto_page="false"))
    (event_id,) = track(page, 1)
    (request,) = collector.wait_for(1, "/v1/batch", timeout_s=5)
    assert [e["event_id"] for e in request.events] == [event_id]


def test_the_page_view_on_load_and_on_single_page_navigations(collector: ScriptedCollector, page: Page) -> None:
    page.goto(collector.page_url(batch_size=1), referer="https://search.example/?q=bags")
    first = page.url
    page.evaluate("history.pushState({}, '', '/shop/bags')")
    page.evaluate("history.replaceState({}, '', '/shop/bags')")  # the same address: no page view
    page.evaluate("history.back()")
    collector.wait_for(3, "/v1/batch")
    page.wait_for_timeout(300)
    views = collector.events("/v1/batch")
    assert [(v["type"], v["url"], v["referrer"]) for v in views] == [
        ("page_view", first, "https://search.example/?q=bags"),
        ("page_view", f"{collector.url}/shop/bags", first),
        ("page_view", first, f"{collector.url}/shop/bags"),
    ]


def test_a_declarative_click_sends_its_attributes_as_typed_fields(collector: ScriptedCollector, page: Page) -> None:
    page.goto(collector.page_url(batch_size=1, auto_page="false"))
    page.click("#buy")
    (request,) = collector.wait_for(1, "/v1/batch")
    (event,) = request.events
    assert {k: event[k] for k in ("type", "product_id", "category", "price", "quantity")} == {
        "type": "add_to_cart",
        "product_id": "sku-1",
        "category": "bags",
        "price": 12.5,  # a number, not "12.50"
        "quantity": 2,  # an integer
    }


def test_the_commerce_helpers_name_their_event_types(collector: ScriptedCollector, page: Page) -> None:
    page.goto(collector.page_url(batch_size=6, **QUIET))
    page.evaluate(
        """() => {
        rtap.productView({product_id: 'p'}); rtap.search('rain jacket'); rtap.addToCart({product_id: 'p'});
        rtap.removeFromCart({product_id: 'p'}); rtap.checkout({});
        rtap.purchase({order_id: 'o-1', product_id: 'p', price: '9.99', quantity: '3'});
    }"""
    )
    (request,) = collector.wait_for(1, "/v1/batch")
    events = request.events
    assert [e["type"] for e in events] == [
        "product_view",
        "search",
        "add_to_cart",
        "remove_from_cart",
        "checkout",
        "purchase",
    ]
    assert events[1]["query"] == "rain jacket"
    assert {k: events[5][k] for k in ("order_id", "price", "quantity")} == {
        "order_id": "o-1",
        "price": 9.99,
        "quantity": 3,
    }


@pytest.mark.parametrize("refusal", [400, 401, 403, 415])  # 413: tests/e2e/test_collect_browser_split.py
def test_a_4xx_is_never_retried_and_its_events_leave_the_queue(
    collector: ScriptedCollector, page: Page, refusal: int
) -> None:
    page.goto(collector.page_url(batch_size=2, **QUIET))
    collector.answer(refusal)
    track(page, 2)
    collector.wait_for(1, "/v1/batch")
    wait_status(page, "s.queued === 0 && s.refused === 2 && s.dropped === 0")
    page.evaluate("rtap.flush()")
    page.wait_for_timeout(1500)  # a retry would come within the first backoff step (at most 1 s)
    assert len(collector.received()) == 1


@pytest.mark.parametrize("busy", [Answer(503, {"Retry-After": "1"}), Answer(429, {"Retry-After": "1"}), DROP])
def test_busy_or_no_answer_is_retried_with_the_same_ids_and_created_times(
    collector: ScriptedCollector, page: Page, busy: Answer | int
) -> None:
    page.goto(collector.page_url(batch_size=2, **QUIET))
    collector.answer(busy, busy)
    ids = track(page, 2)
    first, second, third = collector.wait_for(3, "/v1/batch", timeout_s=15)
    assert [e["event_id"] for e in first.events] == [e["event_id"] for e in third.events] == ids
    assert first.events == second.events == third.events  # the very same events, created_at included
    assert first.body["sent_at"] <= second.body["sent_at"] <= third.body["sent_at"]  # only the send time moves
    if isinstance(busy, Answer):  # Retry-After: 1 holds the next try back at least a second
        assert second.at - first.at >= 0.95
        assert third.at - second.at >= 0.95
    wait_status(page, "s.queued === 0 && s.failures === 0")
    page.wait_for_timeout(500)
    assert len(collector.received()) == 3


def test_the_backoff_doubles_from_its_base_up_to_its_cap_with_retry_after_as_a_floor(
    collector: ScriptedCollector, page: Page
) -> None:
    """The policy's numbers, read off the timers it sets: the jitter's draw is pinned at its top (random()
    returns 0.999), and the page's timers fire after 20 ms whatever they asked, so nine tries take a second."""
    page.add_init_script(
        """
        Math.random = () => 0.999;
        window.asked = [];
        const realSetTimeout = window.setTimeout;
        window.setTimeout = (fn, ms) => { window.asked.push(ms); return realSetTimeout(fn, 20); };
        """
    )
    page.goto(collector.page_url(batch_size=1, **QUIET))
    collector.answer(*[503] * 7, Answer(503, {"Retry-After": "120"}))
    track(page, 1)
    collector.wait_for(9, "/v1/batch")
    wait_status(page, "s.queued === 0")
    # Backoff timers: everything but the flush interval (600 s, set once when the event was queued).
    asked = [round(ms) for ms in page.evaluate("window.asked") if ms != 600_000]
    expected = [999, 1998, 3996, 7992, 15984, 29970, 29970, 120_000]  # 1 s doubling, 30 s cap, Retry-After floor
    assert asked == expected


def test_the_queue_is_bounded_and_drops_the_oldest_with_a_count(collector: ScriptedCollector, page: Page) -> None:
    page.goto(collector.page_url(batch_size=100, max_queue=5, **QUIET))
    ids = track(page, 8)
    assert status(page) == {
        "queued": 5,
        "dropped": 3,
        "refused": 0,
        "failures": 0,
        "persistent": True,
        "tracking": True,
    }
    assert [e["event_id"] for e in stored(page)] == ids[3:]


def test_the_queue_survives_an_outage_and_a_reload(collector: ScriptedCollector, page: Page) -> None:
    page.goto(collector.page_url(batch_size=3, **QUIET))
    collector.answer(Answer(503, {"Retry-After": "3600"}))  # down for an hour, as far as this page knows
    ids = track(page, 3)
    collector.wait_for(1, "/v1/batch")
    wait_status(page, "s.failures === 1 && s.queued === 3")
    page.reload()  # the collector is back; the next page sends what the last one could not
    (_, resent) = collector.wait_for(2, "/v1/batch")
    assert [e["event_id"] for e in resent.events] == ids
    wait_status(page, "s.queued === 0")


def test_a_page_going_away_beacons_its_queue(collector: ScriptedCollector, page: Page) -> None:
    page.goto(collector.page_url(batch_size=100, **QUIET))
    ids = track(page, 3)
    page.goto("about:blank")  # pagehide: the browser sends the beacons after the page is gone
    beacons = collector.wait_for(3, "/v1/event")
    assert sorted(b.body["event_id"] for b in beacons) == sorted(ids)  # one request each, in any order
    for beacon in beacons:
        assert beacon.content_type.startswith("text/plain")
        assert beacon.body["write_key"] == WRITE_KEY
        assert RFC3339_MS.match(beacon.body["sent_at"])
    assert collector.received("/v1/batch") == []


def test_a_tab_closed_right_after_a_click_beacons_that_click(collector: ScriptedCollector, browser: Browser) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(collector.page_url(**QUIET))
        page.click("#buy")
        (event,) = stored(page)
        page.close()  # as a visitor closes the tab: no navigation, nothing else of the site open
        (beacon,) = collector.wait_for(1, "/v1/event")
        assert beacon.body["event_id"] == event["event_id"]
        assert beacon.body["type"] == "add_to_cart"
    finally:
        context.close()


def test_ids_are_version_4_uuids_without_crypto_random_uuid(collector: ScriptedCollector, page: Page) -> None:
    """crypto.randomUUID exists only in secure contexts; a shop on plain http gets getRandomValues' UUIDs."""
    page.add_init_script("delete Crypto.prototype.randomUUID")
    page.goto(collector.page_url(batch_size=50, **QUIET))
    ids = track(page, 50)
    assert page.evaluate("typeof crypto.randomUUID") == "undefined"
    assert all(UUID.match(i) for i in ids)
    assert len(set(ids)) == 50


def test_a_new_session_after_30_idle_minutes(collector: ScriptedCollector, page: Page) -> None:
    page.goto(collector.page_url(batch_size=100, **QUIET))
    track(page, 2)
    page.evaluate(
        "const s = JSON.parse(localStorage.rtap_session); s.t -= 31 * 60 * 1000;"
        " localStorage.rtap_session = JSON.stringify(s)"
    )
    track(page, 1)
    sessions = [e["session_id"] for e in stored(page)]
    assert sessions[0] == sessions[1] != sessions[2]
    assert len({e["anonymous_id"] for e in stored(page)}) == 1  # the same visitor


def test_do_not_track_sends_and_stores_nothing(collector: ScriptedCollector, browser: Browser) -> None:
    for signal in (
        "Navigator.prototype, 'doNotTrack', {get: () => '1'}",
        "Navigator.prototype, 'globalPrivacyControl', {get: () => true}",
    ):
        context = browser.new_context()
        try:
            page = context.new_page()
            page.add_init_script(f"Object.defineProperty({signal})")
            page.goto(collector.page_url(batch_size=1))
            track(page, 3)
            page.click("#buy")
            page.goto("about:blank")
            page.goto(collector.page_url(batch_size=1))
            assert status(page)["tracking"] is False
            assert rtap_keys(page) == {"storage": [], "cookies": []}
        finally:
            context.close()
    assert collector.received() == []


def test_opt_out_erases_and_stops_everything_until_opt_in(collector: ScriptedCollector, page: Page) -> None:
    page.goto(collector.page_url(batch_size=100, **QUIET))
    track(page, 2)
    page.evaluate("rtap.optOut()")
    assert rtap_keys(page) == {"storage": ["rtap_optout"], "cookies": []}
    track(page, 2)
    page.reload()  # the choice holds in later visits
    track(page, 2)
    page.goto("about:blank")
    page.goto(collector.page_url(batch_size=1, auto_page="false"))
    assert rtap_keys(page) == {"storage": ["rtap_optout"], "cookies": []}
    assert collector.received() == []
    page.evaluate("rtap.optIn()")
    (event_id,) = track(page, 1)
    (request,) = collector.wait_for(1, "/v1/batch")
    assert [e["event_id"] for e in request.events] == [event_id]


def parse(instant: str) -> datetime:
    return datetime.fromisoformat(instant.replace("Z", "+00:00"))
