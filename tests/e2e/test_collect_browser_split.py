"""tracker.js in Chromium when the collector answers 413: the batch is sent again in halves, in order, so a
batch with one event too large loses that event only, and ``batchSize`` never exceeds the collector's default
limit of events per request (500, RTAP_COLLECT_MAX_BATCH_EVENTS).

First against a scripted collector (tests/support/scripted_collector.py: which requests, in what order), then
against the real one (`rtap collect` on a real broker): every event it can take is read back from Kafka.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import orjson
import pytest
from playwright.sync_api import Browser, Page, Response

from rtap.runtime.broker import LocalKafka
from rtap.runtime.stack.collector import CollectorDaemon
from rtap.settings import DEMO_WRITE_KEY, CollectorSettings, Settings
from tests.support.collect import collector_settings, read_topic, running_collector, values
from tests.support.demo_shop import chromium, tracker_status, wait_until_sent
from tests.support.scripted_collector import Answer, ScriptedCollector, scripted_collector

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

# No page view of its own, no timer: a test's events go together when the batch is full.
QUIET: dict[str, str | int] = {"auto_page": "false", "flush_interval": 600_000}
# The collector's defaults (RTAP_COLLECT_MAX_EVENT_BYTES, RTAP_COLLECT_MAX_BATCH_EVENTS); tracker.js caps its
# batchSize at the second.
MAX_EVENT_BYTES: int = CollectorSettings.model_fields["max_event_bytes"].default
MAX_BATCH_EVENTS: int = CollectorSettings.model_fields["max_batch_events"].default


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as running:
        yield running


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh profile per test: its own cookies and localStorage."""
    context = browser.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def scripted() -> Iterator[ScriptedCollector]:
    with scripted_collector() as running:
        yield running


def track(page: Page, product_ids: list[str]) -> list[str]:
    """One product view per product id, queued in one go; their event ids."""
    ids: list[str] = page.evaluate("ids => ids.map((id) => rtap.track('product_view', {product_id: id}))", product_ids)
    return ids


def small(count: int) -> list[str]:
    return [f"sku-{n}" for n in range(count)]


TOO_LARGE = "x" * (MAX_EVENT_BYTES + 1)  # a product id that makes its event too large alone


# -- against a scripted collector -----------------------------------------------------------------------------


def test_a_413_sends_each_half_in_order_until_only_the_event_refused_alone_is_dropped(
    scripted: ScriptedCollector, page: Page
) -> None:
    page.goto(scripted.page_url(batch_size=4, **QUIET))
    scripted.answer(413, 200, 413, 200, 413)  # the batch, its first half, its second half, each half of that
    a, b, c, d = track(page, small(4))
    requests = scripted.wait_for(5, "/v1/batch")
    assert [[e["event_id"] for e in r.events] for r in requests] == [[a, b, c, d], [a, b], [c, d], [c], [d]]
    page.wait_for_function("(() => { const s = rtap.status(); return s.queued === 0 && s.refused === 1; })()")
    assert tracker_status(page)["dropped"] == 0
    page.evaluate("rtap.flush()")
    page.wait_for_timeout(1500)  # a retry of the refused event would come within the first backoff step
    assert len(scripted.received()) == 5


def test_a_busy_answer_to_a_half_retries_that_half_before_the_next(scripted: ScriptedCollector, page: Page) -> None:
    page.goto(scripted.page_url(batch_size=4, **QUIET))
    scripted.answer(413, Answer(503, {"Retry-After": "1"}))
    a, b, c, d = track(page, small(4))
    requests = scripted.wait_for(4, "/v1/batch")
    assert [[e["event_id"] for e in r.events] for r in requests] == [[a, b, c, d], [a, b], [a, b], [c, d]]
    assert requests[2].at - requests[1].at >= 0.95
    page.wait_for_function("(() => { const s = rtap.status(); return s.queued === 0 && s.failures === 0; })()")
    assert tracker_status(page)["refused"] == 0


def test_a_413_for_one_event_is_never_retried(scripted: ScriptedCollector, page: Page) -> None:
    page.goto(scripted.page_url(batch_size=1, **QUIET))
    scripted.answer(413)
    track(page, small(1))
    scripted.wait_for(1, "/v1/batch")
    page.wait_for_function("(() => { const s = rtap.status(); return s.queued === 0 && s.refused === 1; })()")
    page.evaluate("rtap.flush()")
    page.wait_for_timeout(1500)
    assert len(scripted.received()) == 1


def test_batch_size_is_capped_at_the_collectors_limit_of_events_per_request(
    scripted: ScriptedCollector, page: Page
) -> None:
    page.goto(scripted.page_url(batch_size=1000, max_queue=1000, **QUIET))
    ids = track(page, small(MAX_BATCH_EVENTS + 20))
    first, rest = scripted.wait_for(2, "/v1/batch")  # the 500th event filled a batch: no timer, no flush()
    assert [e["event_id"] for e in first.events] == ids[:MAX_BATCH_EVENTS]
    assert [e["event_id"] for e in rest.events] == ids[MAX_BATCH_EVENTS:]
    wait_until_sent(page)


# -- against the real collector and Kafka ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def base(broker: LocalKafka) -> Settings:
    return broker.settings.model_copy(update={"kafka": broker.kafka_settings()})


def unique(prefix: str) -> str:
    return f"{prefix}-split-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def collector(base: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorDaemon]:
    """`rtap collect` with its default limits."""
    settings = collector_settings(base, tmp_path_factory.mktemp("collect-split"), unique)
    with running_collector(settings) as daemon:
        yield daemon


@pytest.fixture(scope="module")
def strict_collector(base: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorDaemon]:
    """`rtap collect` taking at most 16 KiB and 3 events per request."""
    settings = collector_settings(base, tmp_path_factory.mktemp("collect-split-strict"), unique)
    env = {"RTAP_COLLECT_MAX_BODY_BYTES": "16384", "RTAP_COLLECT_MAX_BATCH_EVENTS": "3"}
    with running_collector(settings, env) as daemon:
        yield daemon


def open_tracker_page(page: Page, daemon: CollectorDaemon, **attributes: str | int) -> list[Response]:
    """A page of the collector's own origin (the demo key's) loading its tracker.js with ``attributes``; the
    answers to the tracker's batches, as they come."""
    data = " ".join(f'data-{name.replace("_", "-")}="{value}"' for name, value in attributes.items())
    script = f'<script src="/tracker.js" data-write-key="{DEMO_WRITE_KEY}" {data}></script>'
    html = f"<!doctype html><title>split</title>{script}"
    page.route(f"{daemon.url}/page.html", lambda route: route.fulfill(content_type="text/html", body=html))
    answers: list[Response] = []
    page.on("response", lambda response: answers.append(response) if response.url.endswith("/v1/batch") else None)
    page.goto(f"{daemon.url}/page.html")
    return answers


def in_kafka(daemon: CollectorDaemon, ids: list[str], expected: int) -> list[str]:
    """The event ids of ``ids`` the collector wrote to its topic (``expected`` of them at least, once every one
    was acknowledged), in the topic's order (one session: one partition), copies included."""
    kafka = daemon.settings.kafka
    records = values(read_topic(kafka, kafka.browser_topic, at_least=expected, timeout_s=20))
    wanted = set(ids)
    return [r["event_id"] for r in records if r["event_id"] in wanted]


def batches(answers: list[Response]) -> list[tuple[int, int, str | None]]:
    """Each batch request's size, its answer's status and its refusal's reason."""
    found = []
    for answer in answers:
        body = orjson.loads(answer.request.post_data or "{}")
        reason = answer.json().get("reason") if answer.status != 200 else None
        found.append((len(body["events"]), answer.status, reason))
    return found


def test_a_batch_with_one_event_too_large_loses_only_that_event(collector: CollectorDaemon, page: Page) -> None:
    answers = open_tracker_page(page, collector, batch_size=8, **QUIET)
    ids = track(page, [*small(3), TOO_LARGE, *small(4)])
    wait_until_sent(page)
    valid = ids[:3] + ids[4:]
    assert in_kafka(collector, ids, len(valid)) == valid  # each once, in order, and not the one too large
    assert tracker_status(page)["refused"] == 1
    assert tracker_status(page)["dropped"] == 0
    too_large = (413, "event_too_large")
    assert batches(answers) == [
        (8, *too_large),
        (4, *too_large),
        (2, 200, None),
        (2, *too_large),
        (1, 200, None),
        (1, *too_large),  # the event too large alone: dropped
        (4, 200, None),
    ]


def test_a_batch_size_over_the_collectors_limit_delivers_every_event(collector: CollectorDaemon, page: Page) -> None:
    answers = open_tracker_page(page, collector, batch_size=1000, max_queue=1000, **QUIET)
    ids = track(page, small(MAX_BATCH_EVENTS + 20))
    page.evaluate("rtap.flush()")  # sends what waits, whether or not a batch filled
    wait_until_sent(page)
    assert in_kafka(collector, ids, len(ids)) == ids
    assert tracker_status(page)["refused"] == 0
    assert batches(answers) == [(MAX_BATCH_EVENTS, 200, None), (20, 200, None)]


def test_body_too_large_and_too_many_events_are_split_until_accepted(
    strict_collector: CollectorDaemon, page: Page
) -> None:
    answers = open_tracker_page(page, strict_collector, batch_size=8, **QUIET)
    ids = track(page, [f"sku-{n}-" + "y" * 3000 for n in range(8)])  # 8 x 3 KB: over 16 KiB; 4: under it
    wait_until_sent(page)
    assert in_kafka(strict_collector, ids, len(ids)) == ids
    assert tracker_status(page)["refused"] == 0
    too_many = (413, "too_many_events")
    assert batches(answers) == [
        (8, 413, "body_too_large"),
        (4, *too_many),
        (2, 200, None),
        (2, 200, None),
        (4, *too_many),
        (2, 200, None),
        (2, 200, None),
    ]
