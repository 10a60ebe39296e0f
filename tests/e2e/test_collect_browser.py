"""Clicks from a real browser all the way to the dashboard: Debian's Chromium visits the demo shop that
`rtap collect` serves, the tracker posts to the collector, the collector writes to a real Kafka broker, the
stream job (its own process) writes to chDB, and the built-in dashboard draws it.

What each test proves:
- a scripted visit (browse, search, product views, add to cart, purchase): every event the tracker made is in
  ``events`` exactly once, with its type, user, session and order; the funnel and the most-clicked-URLs panels
  move by exactly the visit;
- the collector stopped for 20 s in the middle of a visit: after it is back, every event arrives, none twice;
- a tab closed right after a click: the click arrives (by sendBeacon: the collector counts a /v1/event request);
- a device clock two hours ahead or behind: every event's time lands within a second of the true time;
- a page without JavaScript: its <noscript> pixel's page view is in ``events``;
- screenshots of the shop and of the dashboard after the visit, in test-artifacts/ for a person to look at.

The tracker's own rules (which answers it retries, the backoff, the bounded queue, consent) are checked faster
against a scripted collector in tests/e2e/test_collect_browser_queue.py.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from rtap.dashboard.server import DashboardServer, serve_dashboard
from rtap.runtime.broker import LocalKafka
from rtap.settings import CollectorSettings, Settings, child_environment
from rtap.warehouse import WarehouseClient, create_client
from rtap.warehouse.chdb.ownership import owner_pid
from tests.support.browser import ARTIFACTS
from tests.support.demo_shop import (
    RECORD_MADE_EVENTS,
    add_to_cart,
    chromium,
    device_clock_off_by,
    made_events,
    open_product,
    place_order,
    search,
    tracker_status,
    wait_until_sent,
)
from tests.support.paths import free_port
from tests.support.pipeline import StreamProcess, pipeline_settings

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

ARRIVAL_TIMEOUT_S = 120.0
OUTAGE_S = 20.0
EVENT_COLUMNS = "event_id, event_type, user_id, session_id, page_url, product_id, price, quantity, order_id"


class CollectProcess:
    """`rtap collect` in its own process on a fixed port, so that it can be stopped and started again there."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.settings = settings
        self.url = f"http://127.0.0.1:{settings.collect.port}"
        self.shop_url = f"{self.url}/shop/"
        self._log_path = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> None:
        with self._log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "rtap", "collect", "--port", str(self.settings.collect.port)],
                env=child_environment(self.settings),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while not self.healthy():
            if self.process.poll() is not None:
                raise AssertionError(f"rtap collect exited with {self.process.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"rtap collect not healthy within {timeout_s:.0f} s:\n{self.log_tail()}")
            time.sleep(0.2)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM, as an operator stops it: it answers what is in flight, flushes, and exits (uvicorn ends a
        graceful shutdown by raising the signal again, so the exit is the signal's)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=60) in (0, -signal.SIGTERM), self.log_tail()

    def requests(self, route: str, code: int = 200) -> float:
        """How many requests to ``route`` it answered with ``code`` (its Prometheus counter)."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("rtap_collect_requests_total{")
            and f'route="{route}"' in line
            and f'code="{code}"' in line
        )

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Stack:
    settings: Settings
    job: StreamProcess
    collector: CollectProcess
    dashboard: DashboardServer
    warehouse: WarehouseClient
    browser: Browser


@pytest.fixture(scope="module")
def stack(broker: LocalKafka, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("collect-browser")
    name = f"shop-{uuid.uuid4().hex[:8]}"
    base = pipeline_settings(broker, data, name)
    settings = base.model_copy(
        update={
            "kafka": base.kafka.model_copy(update={"browser_topic": f"{name}.browser"}),
            "collect": CollectorSettings(port=free_port()),
        }
    )
    collector = CollectProcess(settings, data / "collect.log")
    collector.start()  # it creates the topics, the browser's among them
    job = StreamProcess(settings)
    try:
        job.wait_logged("micro-batches of at most")  # subscribed: it owns the warehouse from here on
        deadline = time.monotonic() + 60
        while owner_pid(settings.paths.chdb) != job.process.pid:
            assert time.monotonic() < deadline, f"the job did not open the warehouse:\n{job.log_tail()}"
            time.sleep(0.2)
        with (
            create_client(settings, readonly=True) as warehouse,
            create_client(settings, readonly=True) as dashboard_reader,
            serve_dashboard(settings, dashboard_reader, port=0) as dashboard,
            chromium() as browser,
        ):
            yield Stack(settings, job, collector, dashboard, warehouse, browser)
    finally:
        if collector.process is not None and collector.process.poll() is None:
            collector.stop()
        job.stop()


@pytest.fixture
def visitor(stack: Stack) -> Iterator[BrowserContext]:
    """A new visitor: a browser profile of its own (cookies, localStorage), its events recorded as made."""
    context = stack.browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-US", timezone_id="UTC")
    context.add_init_script(RECORD_MADE_EVENTS)
    try:
        yield context
    finally:
        context.close()


def stored_events(stack: Stack, user_id: str) -> list[dict[str, Any]]:
    """The visitor's rows of ``events``: every copy the table holds (no FINAL), so a duplicate would show."""
    columns = [c.strip() for c in EVENT_COLUMNS.split(",")]
    rows = stack.warehouse.query_rows(
        f"SELECT {EVENT_COLUMNS}, event_time FROM {{db}}.events WHERE user_id = {{user:String}} ORDER BY event_time",
        parameters={"user": user_id},
    )
    found = [dict(zip([*columns, "event_time"], row, strict=True)) for row in rows]
    for row in found:
        row["event_id"] = str(row["event_id"])  # a UUID column
    return found


def wait_for_events(stack: Stack, user_id: str, count: int) -> list[dict[str, Any]]:
    """The visitor's rows once there are ``count`` of them (more is a failure: a copy got through)."""
    deadline = time.monotonic() + ARRIVAL_TIMEOUT_S
    while len(rows := stored_events(stack, user_id)) < count:
        if stack.job.process.poll() is not None:
            raise AssertionError(f"the stream job exited:\n{stack.job.log_tail()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(rows)} of {count} events in the warehouse after {ARRIVAL_TIMEOUT_S:.0f} s")
        time.sleep(1.0)
    time.sleep(3.0)  # a copy would come in the next micro-batches
    return stored_events(stack, user_id)


def assert_exactly_the_made_events(rows: list[dict[str, Any]], made: list[dict[str, Any]]) -> None:
    assert len(rows) == len({r["event_id"] for r in rows}), "an event is in the table twice"
    assert {r["event_id"]: r["event_type"] for r in rows} == {e["event_id"]: e["type"] for e in made}
    by_id = {r["event_id"]: r for r in rows}
    for event in made:
        row = by_id[event["event_id"]]
        assert (row["user_id"], row["session_id"], row["page_url"]) == (
            event["anonymous_id"],
            event["session_id"],
            event["url"],
        )
        assert (row["product_id"], row["quantity"], row["order_id"]) == (
            event.get("product_id"),
            event.get("quantity"),
            event.get("order_id"),
        )
        assert (row["price"] is None) == (event.get("price") is None)
        if row["price"] is not None:
            assert float(row["price"]) == event["price"]


def visitor_id(page: Page) -> str:
    cookie = next(c for c in page.context.cookies() if c["name"] == "rtap_aid")
    return cookie["value"]


def panel_values(page: Page, panel: str) -> dict[str, float]:
    """A bar or funnel panel's drawn values by label ({} while it has no data)."""
    values: dict[str, float] = page.evaluate(
        """(id) => {
        const node = document.querySelector(`#panel-${id}`);
        if (!node || node.dataset.state !== 'ok') return {};
        const trace = node.querySelector('.chart').data[0];
        return Object.fromEntries(trace.y.map((label, i) => [label, trace.x[i]]));
    }""",
        panel,
    )
    return values


def orders_tile(page: Page) -> int:
    """The orders tile's figure (0 while the panel has no data)."""
    text: str | None = page.evaluate(
        """() => {
        const node = document.querySelector('#panel-orders_revenue');
        if (!node || node.dataset.state !== 'ok') return null;
        return node.querySelector(".number[data-column='orders'] .value")?.textContent ?? null;
    }"""
    )
    return int(text.replace(",", "")) if text else 0


def wait_for_panels(page: Page, expected: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not expected():
        assert time.monotonic() < deadline, f"the dashboard did not show {what} within {timeout_s:.0f} s"
        page.wait_for_timeout(500)


def test_a_scripted_visit_lands_exactly_once_and_moves_the_dashboard(stack: Stack, visitor: BrowserContext) -> None:
    board = stack.browser.new_page(viewport={"width": 1680, "height": 1050}, locale="en-US", timezone_id="UTC")
    board.goto(f"{stack.dashboard.url}/#clickstream")
    board.wait_for_function(  # both panels have answered once: their values before the visit are known
        "['conversion_funnel', 'most_clicked_urls', 'orders_revenue'].every("
        "id => ['ok', 'empty'].includes(document.querySelector(`#panel-${id}`)?.dataset.state))"
    )
    assert board.get_attribute("#shop", "href") == stack.collector.shop_url  # the header's link to the shop
    funnel_before = panel_values(board, "conversion_funnel")
    urls_before = panel_values(board, "most_clicked_urls")
    orders_before = orders_tile(board)

    page = visitor.new_page()
    shop = stack.collector.shop_url
    page.goto(f"{shop}index.html")
    open_product(page, shop, "demo-storm-shell")
    add_to_cart(page, quantity=2)
    with page.expect_navigation():
        page.click("a.brand")
    search(page, "lamp")
    page.screenshot(path=str(artifact("shop-search.png")), full_page=True)
    open_product(page, shop, "demo-arc-lamp")
    add_to_cart(page, quantity=1)
    page.screenshot(path=str(artifact("shop-product.png")), full_page=True)
    order_id = place_order(page)
    wait_until_sent(page)
    page.wait_for_function("document.querySelector('#queued').textContent === 'all events sent'")  # the footer
    page.screenshot(path=str(artifact("shop-order-placed.png")), full_page=True)

    made = made_events(page)
    assert Counter(e["type"] for e in made) == {
        "page_view": 7,  # catalogue, product, catalogue, search results, product, cart, checkout
        "product_view": 2,
        "add_to_cart": 2,
        "search": 1,
        "checkout": 1,
        "purchase": 2,  # one per cart line
    }
    user = visitor_id(page)
    assert {e["anonymous_id"] for e in made} == {user}
    assert len({e["session_id"] for e in made}) == 1
    purchases = [e for e in made if e["type"] == "purchase"]
    assert [(e["order_id"], e["product_id"], e["quantity"]) for e in purchases] == [
        (order_id, "demo-storm-shell", 2),
        (order_id, "demo-arc-lamp", 1),
    ]

    rows = wait_for_events(stack, user, len(made))
    assert_exactly_the_made_events(rows, made)

    # The dashboard moves by exactly this visit: one more session at every stage of the funnel, and each page
    # of the visit clicked as often as it was viewed.
    views = Counter(e["url"] for e in made if e["type"] in ("page_view", "product_view"))
    funnel_after = {stage: funnel_before.get(stage, 0) + 1 for stage in ("Session", "Added to cart", "Checkout")}
    funnel_after["Purchase"] = funnel_before.get("Purchase", 0) + 1

    def moved() -> bool:  # the orders tile too, which the screenshot shows (it refreshes on its own clock)
        funnel, urls = panel_values(board, "conversion_funnel"), panel_values(board, "most_clicked_urls")
        return (
            funnel == funnel_after
            and all(urls.get(u, 0) - urls_before.get(u, 0) == n for u, n in views.items())
            and orders_tile(board) > orders_before
        )

    wait_for_panels(board, moved, "the visit")
    board.wait_for_timeout(800)  # plotly's transition
    board.screenshot(path=str(artifact("dashboard-after-shop-visit.png")), full_page=True)
    board.close()


def test_a_collector_outage_mid_visit_loses_nothing_and_doubles_nothing(stack: Stack, visitor: BrowserContext) -> None:
    page = visitor.new_page()
    shop = stack.collector.shop_url
    page.goto(f"{shop}index.html")
    open_product(page, shop, "demo-field-watch")
    wait_until_sent(page)

    # The collector also serves the shop's pages: while it is down the visitor stays on this page, as a
    # visitor of a real site would keep clicking on a page that is already loaded.
    stack.collector.stop()
    stopped = time.monotonic()
    add_to_cart(page, quantity=1)
    # Past the batch interval (3 s) the tracker tries, and finds nobody: wait for that try to have failed.
    page.wait_for_function("rtap.status().failures >= 1", timeout=30_000, polling=200)
    add_to_cart(page, quantity=2)
    status = tracker_status(page)
    assert status["queued"] == 2
    assert status["failures"] >= 1
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)))
    stack.collector.start()

    wait_until_sent(page, timeout_ms=90_000)  # the same page tries again within the backoff's cap (30 s)
    order_id = place_order(page)
    wait_until_sent(page)
    made = made_events(page)
    purchases = [(e["order_id"], e["product_id"], e["quantity"]) for e in made if e["type"] == "purchase"]
    assert purchases == [(order_id, "demo-field-watch", 3)]  # both clicks made during the outage are in the order
    rows = wait_for_events(stack, visitor_id(page), len(made))
    assert_exactly_the_made_events(rows, made)


def test_a_tab_closed_right_after_a_click_still_delivers_the_click(stack: Stack, visitor: BrowserContext) -> None:
    page = visitor.new_page()
    page.goto(f"{stack.collector.shop_url}product.html?id=demo-aviator")
    page.wait_for_selector("#add-to-cart")
    wait_until_sent(page)
    user = visitor_id(page)
    beacons = stack.collector.requests("/v1/event")
    batches = stack.collector.requests("/v1/batch")

    made: list[dict[str, Any]] = page.evaluate(
        "document.querySelector('#add-to-cart').click(); JSON.parse(localStorage.getItem('rtap_test_made'))"
    )
    page.close()  # before the tracker's next batch (3 s): only a beacon can deliver the click
    assert [e["type"] for e in made] == ["page_view", "product_view", "add_to_cart"]

    rows = wait_for_events(stack, user, len(made))
    assert_exactly_the_made_events(rows, made)
    assert stack.collector.requests("/v1/event") > beacons
    assert stack.collector.requests("/v1/batch") == batches


def test_a_page_without_javascript_is_counted_by_its_pixel(stack: Stack) -> None:
    context = stack.browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        url = f"{stack.collector.shop_url}product.html?id=demo-trail-runner&visit={uuid.uuid4().hex}"
        with page.expect_response(lambda response: "/v1/pixel.gif" in response.url) as pixel:
            page.goto(url)
        assert pixel.value.status == 200
        assert pixel.value.headers["content-type"] == "image/gif"
    finally:
        context.close()
    # The page's <noscript> image names only the type: the collector made the ids and took the page's address
    # from the Referer header.
    deadline = time.monotonic() + ARRIVAL_TIMEOUT_S
    sql = f"SELECT {EVENT_COLUMNS} FROM {{db}}.events WHERE page_url = {{url:String}}"
    while not (rows := stack.warehouse.query_rows(sql, parameters={"url": url})):
        assert time.monotonic() < deadline, f"the pixel's page view is not in events after {ARRIVAL_TIMEOUT_S:.0f} s"
        time.sleep(1.0)
    ((_event_id, event_type, user_id, session_id, *_rest),) = rows
    assert event_type == "page_view"
    assert user_id
    assert session_id


@pytest.mark.parametrize("offset", [timedelta(hours=2), -timedelta(hours=2)], ids=["2h-ahead", "2h-behind"])
def test_a_device_clock_hours_off_still_gives_true_event_times(
    stack: Stack, visitor: BrowserContext, offset: timedelta
) -> None:
    page = visitor.new_page()
    page.add_init_script(device_clock_off_by(int(offset.total_seconds() * 1000)))
    shop = stack.collector.shop_url
    page.goto(f"{shop}index.html")
    open_product(page, shop, "demo-studio-headphones")
    page.wait_for_timeout(1500)  # events made at different moments, sent together
    add_to_cart(page, quantity=1)
    wait_until_sent(page)

    made = made_events(page)
    device_now = datetime.fromisoformat(page.evaluate("new Date().toISOString()"))
    assert abs(device_now - datetime.now(UTC) - offset) < timedelta(seconds=5)  # the page's clock is off
    rows = wait_for_events(stack, visitor_id(page), len(made))
    assert_exactly_the_made_events(rows, made)
    for event in made:
        true_time = datetime.fromisoformat(event["created_at"]) - offset  # when it happened, on a right clock
        stored = next(r["event_time"] for r in rows if r["event_id"] == event["event_id"]).replace(tzinfo=UTC)
        assert abs(stored - true_time) <= timedelta(seconds=1), (event["type"], stored, true_time)


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
