"""The built-in dashboard in a real headless Chromium: every panel draws data, the figures it prints are the
tables' figures, charts follow new rows, and the newest, still-filling bucket is drawn as open.

Chromium comes from Debian (``make system-deps``); Playwright only drives it and never downloads one. The page
runs in en-US and UTC, so the expected texts are fixed. Screenshots land in test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Page

from rtap.dashboard.server import DashboardServer, serve_dashboard
from rtap.settings import Settings, StreamSettings, WarehouseSettings
from rtap.warehouse import WarehouseClient, create_client
from rtap.warehouse.migrate import apply_migrations
from tests.support.browser import ARTIFACTS, chart_data, wait_until_every_panel_has_data
from tests.support.seed import seed_clickstream, seed_flow, seed_page_views, seed_pipeline

pytestmark = pytest.mark.browser


@dataclass
class Served:
    server: DashboardServer
    writer: WarehouseClient
    now: datetime


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    # The seeded sessions ended a minute ago: with a 20 s session gap they count as ended (abandoned carts).
    return Settings(data_dir=tmp_path_factory.mktemp("rtap-browser"), stream=StreamSettings(session_gap_s=20))


@pytest.fixture(scope="module")
def served(settings: Settings) -> Iterator[Served]:
    now = datetime.now(UTC) - timedelta(seconds=2)
    with create_client(settings) as writer:
        apply_migrations(writer)
        seed_clickstream(writer, now)
        seed_pipeline(writer, now)
        with create_client(settings, readonly=True) as reader, serve_dashboard(settings, reader, port=0) as server:
            yield Served(server, writer, now)


@pytest.fixture(scope="module")
def flowing(settings: Settings, served: Served) -> Iterator[Served]:
    """A second database on the same engine: 1,000 events/s that started 3.5 minutes before now."""
    flow = settings.model_copy(update={"warehouse": WarehouseSettings(database="rtap_flow")})
    # The newest minute must still be open when the page asks and while the test reads it, after the migrations,
    # the seed and the page's load: up to half a minute on a slow machine, so start early in the minute.
    while not 5 <= datetime.now(UTC).second <= 20:
        time.sleep(0.5)
    now = datetime.now(UTC)
    with create_client(flow) as writer:
        apply_migrations(writer)
        seed_flow(writer, now - timedelta(seconds=210), now)
        with create_client(flow, readonly=True) as reader, serve_dashboard(flow, reader, port=0) as server:
            yield Served(server, writer, now)


def scalar(client: WarehouseClient, sql: str) -> Any:
    return client.query_rows(sql)[0][0]


def tile(page: Page, panel: str, column: str) -> str:
    return page.locator(f"#panel-{panel} .number[data-column='{column}'] .value").inner_text()


def traces(page: Page, panel: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = page.eval_on_selector(
        f"#panel-{panel} .chart", "el => el.data.map(t => ({name: t.name, y: t.y, open: t.meta.bucket === 'open'}))"
    )
    return found


def open_buckets(page: Page, panel: str) -> dict[str, float]:
    """Each series' newest, still-filling value (its dotted trace)."""
    return {t["name"]: t["y"][-1] for t in traces(page, panel) if t["open"]}


def newest(page: Page, panel: str) -> dict[str, float]:
    """Each series' newest value, in its dotted trace while the minute is open, in its solid one after."""
    found = {t["name"]: t["y"][-1] for t in traces(page, panel) if not t["open"]}
    return found | open_buckets(page, panel)


def grouped(value: float) -> str:
    """A number as the page prints it without a format: in full, grouped, one decimal unless whole."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def test_every_panel_renders_and_a_chart_follows_new_rows(served: Served, page: Page) -> None:
    page.goto(f"{served.server.url}/#clickstream")
    wait_until_every_panel_has_data(page, "clickstream")
    before = newest(page, "page_views_top_pages")
    assert len(before) == 5

    # A later micro-batch refines the newest minute: the chart must show it at its next refresh (2 s).
    seed_page_views(served.writer, served.now, minutes=1, version=2, extra_views=500)
    page.wait_for_function(
        "() => { const el = document.querySelector('#panel-page_views_top_pages .chart');"
        " return el && el.data && el.data.some(t => t.y[t.y.length - 1] >= 500); }",
        timeout=10_000,
    )
    after = newest(page, "page_views_top_pages")
    assert {name: value - before[name] for name, value in after.items()} == dict.fromkeys(before, 500)
    ARTIFACTS.mkdir(exist_ok=True)
    page.wait_for_timeout(500)  # let plotly finish its transition before the picture is taken
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    page.click("#tabs a[data-id='pipeline']")
    wait_until_every_panel_has_data(page, "pipeline")
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "dashboard-pipeline.png"), full_page=True)


def test_the_figures_shown_are_the_tables_figures(served: Served, page: Page) -> None:
    db = served.writer
    page.goto(f"{served.server.url}/#clickstream")
    wait_until_every_panel_has_data(page, "clickstream")
    orders, revenue = db.query_rows(
        "SELECT sum(orders), sum(revenue) FROM {db}.events_1m FINAL WHERE event_type = 'purchase'"
    )[0]
    assert tile(page, "orders_revenue", "orders") == grouped(orders)
    assert tile(page, "orders_revenue", "revenue") == f"${revenue:,.2f}"  # $599.70: a unit and two decimals
    assert tile(page, "events_total", "total_events") == grouped(scalar(db, "SELECT sum(events) FROM {db}.events_1m"))
    assert tile(page, "active_users", "in_range") == grouped(scalar(db, "SELECT uniqExact(user_id) FROM {db}.events"))
    assert tile(page, "abandoned_cart_rate", "abandoned_pct") == "50.0 %"  # 3 of the 6 ended sessions with a cart

    stages = db.query_rows(
        "SELECT count(), sum(reached_cart), sum(reached_checkout), sum(purchased) FROM {db}.sessions FINAL"
    )[0]
    shown = page.eval_on_selector("#panel-conversion_funnel .chart", "el => el.data[0].text")
    assert shown == [grouped(stages[0])] + [f"{grouped(n)} · {100 * n / stages[0]:.1f} %" for n in stages[1:]]

    products = db.query_rows(
        "SELECT product_id, sum(price * quantity) AS revenue FROM {db}.events FINAL WHERE event_type = 'purchase' "
        "GROUP BY product_id ORDER BY revenue DESC"
    )
    bars = page.eval_on_selector("#panel-top_products .chart", "el => [el.data[0].y, el.data[0].text]")
    assert list(zip(*bars, strict=True)) == [(product, f"${value:,.2f}") for product, value in reversed(products)]

    page.click("#tabs a[data-id='pipeline']")
    wait_until_every_panel_has_data(page, "pipeline")
    freshness, lag = db.query_rows(
        "SELECT argMax(freshness_ms, finished_at), argMax(kafka_lag, finished_at) FROM {db}.pipeline_batches FINAL"
    )[0]
    assert tile(page, "freshness", "freshness_s") == f"{freshness / 1000:.1f} s"
    assert tile(page, "kafka_lag_now", "lag") == grouped(lag)
    totals = db.query_rows("SELECT sum(dead_letters), sum(late), sum(duplicates) FROM {db}.pipeline_batches FINAL")[0]
    for column, value in zip(("dead_letters", "late", "duplicates"), totals, strict=True):
        assert tile(page, "rejected_totals", column) == grouped(value)
    newest = page.locator("#panel-recent_batches tbody tr").first.locator("td")
    batch = db.query_rows(
        "SELECT duration_ms, freshness_ms FROM {db}.pipeline_batches FINAL ORDER BY finished_at DESC LIMIT 1"
    )[0]
    assert newest.nth(7).inner_text() == f"{batch[0]:,} ms"
    assert newest.nth(10).inner_text() == f"{batch[1] / 1000:.1f} s"


def test_the_rate_is_over_the_time_that_has_data(flowing: Served, page: Page) -> None:
    # Issue #16: 1,000 events/s were flowing and the tile said 16.3/s, the hour's count over the whole hour.
    page.goto(f"{flowing.server.url}/?range=1h#clickstream")
    page.wait_for_function(  # only the event panels: this database holds no sessions or purchases
        "() => ['events_total', 'events_by_type'].every("
        "id => document.querySelector(`#panel-${id}`)?.dataset.state === 'ok')",
        timeout=20_000,
    )
    db = flowing.writer
    count, first, last = db.query_rows("SELECT count(), min(event_time), max(event_time) FROM {db}.events")[0]
    rate = round(count / ((last - first).total_seconds()), 1)
    assert 999 <= rate <= 1001
    assert tile(page, "events_total", "total_events") == grouped(count)
    assert tile(page, "events_total", "per_second") == f"{grouped(rate)} /s"

    # The newest minute is still filling: a dotted segment ending in an open circle, and the panel says so.
    closed = {t["name"]: t["y"][-1] for t in traces(page, "events_by_type") if not t["open"]}
    filling = open_buckets(page, "events_by_type")
    assert set(filling) == set(closed)
    styles = page.eval_on_selector("#panel-events_by_type .chart", "el => el.data.map(t => t.line.dash || 'solid')")
    assert sorted(set(styles)) == ["dot", "solid"]
    minutes = db.query_rows(
        "SELECT toDateTime64(toStartOfMinute(event_time), 0, 'UTC') AS minute, event_type, count() FROM {db}.events "
        "GROUP BY minute, event_type ORDER BY minute"
    )
    newest_minute = minutes[-1][0]
    full = {kind: n for minute, kind, n in minutes if minute == newest_minute - timedelta(minutes=1)}
    partial = {kind: n for minute, kind, n in minutes if minute == newest_minute}
    assert closed == full
    assert filling == partial
    assert "newest minute still filling (dotted)" in page.locator("#panel-events_by_type .panel-updated").inner_text()
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "dashboard-flowing.png"), full_page=True)


def test_each_figure_of_a_number_tile_fits_its_share_of_the_tile_in_a_narrow_window(
    flowing: Served, page: Page
) -> None:
    """Seen on `rtap up`: at 1,400 px, "3,038" orders ran into "$160,322.70" revenue in a quarter-width tile. Here
    two long figures (210,000 events and 1,000.0 /s) in a quarter of a 1,000 px window: each value's text fits
    its own box (the boxes sit side by side, so nothing overlaps), at a smaller size than a short figure's."""
    page.set_viewport_size({"width": 1000, "height": 700})
    page.goto(f"{flowing.server.url}/?range=1h#clickstream")
    page.wait_for_function("() => document.querySelector('#panel-events_total')?.dataset.state === 'ok'")
    boxes = page.eval_on_selector_all(
        ".number .value", "els => els.map(e => ({text: e.innerText, scroll: e.scrollWidth, client: e.clientWidth}))"
    )
    assert [b["text"] for b in boxes if b["scroll"] > b["client"]] == []
    size = "(panel, column) => getComputedStyle(document.querySelector("
    size += "`#panel-${panel} .number[data-column='${column}'] .value`)).fontSize"
    long = page.evaluate(f"({size})('events_total', 'per_second')")
    assert float(long.removesuffix("px")) < 34  # shrunk to fit, from the tile's 34 px
    page.screenshot(path=str(ARTIFACTS / "dashboard-narrow.png"))


def test_range_choice_reloads_every_panel(served: Served, page: Page) -> None:
    page.goto(f"{served.server.url}/?range=15m#clickstream")
    wait_until_every_panel_has_data(page, "clickstream")
    assert page.locator("#ranges button.active").inner_text() == "15m"
    page.click("#ranges button[data-range='24h']")
    wait_until_every_panel_has_data(page, "clickstream")
    assert page.locator("#ranges button.active").inner_text() == "24h"
    assert page.locator("#status").inner_text().startswith("live")


def test_most_clicked_urls_draws_the_page_views_per_page(served: Served, page: Page) -> None:
    """The previous system's chart: one bar per page, its clicks the page views of rtap's own table."""
    writer = served.writer
    page.goto(f"{served.server.url}/#clickstream")
    wait_until_every_panel_has_data(page, "clickstream")
    # Every seeded window is within the page's default hour; read straight from page_views_1m, not the view.
    totals = writer.query_rows("SELECT page_url, sum(views) AS v FROM {db}.page_views_1m FINAL GROUP BY page_url")
    (bars,) = chart_data(page, "most_clicked_urls")
    drawn = dict(zip(bars["y"], bars["x"], strict=True))
    assert drawn == dict(totals)
    assert bars["x"] == sorted(bars["x"]), "largest on top"
