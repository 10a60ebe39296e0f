"""The built-in dashboard in a real headless Chromium: every panel draws data, and charts follow new rows.

Chromium comes from Debian (``make system-deps``); Playwright only drives it and never downloads one.
Screenshots land in test-artifacts/ for a person to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page

from rtap.dashboard.server import DashboardServer, serve_dashboard
from rtap.settings import Settings, StreamSettings
from rtap.warehouse import WarehouseClient, create_client
from rtap.warehouse.migrate import apply_migrations
from tests.e2e.browser import ARTIFACTS, chart_data, wait_until_every_panel_has_data
from tests.integration.dashboard.seed import seed_clickstream, seed_page_views, seed_pipeline

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DashboardServer, WarehouseClient, datetime]]:
    # The seeded sessions ended a minute ago: with a 20 s session gap they count as ended (abandoned carts).
    settings = Settings(data_dir=tmp_path_factory.mktemp("rtap-browser"), stream=StreamSettings(session_gap_s=20))
    now = datetime.now(UTC) - timedelta(seconds=2)
    with create_client(settings) as writer:
        apply_migrations(writer)
        seed_clickstream(writer, now)
        seed_pipeline(writer, now)
        with create_client(settings, readonly=True) as reader, serve_dashboard(settings, reader, port=0) as server:
            yield server, writer, now


def test_every_panel_renders_and_a_chart_follows_new_rows(
    served: tuple[DashboardServer, WarehouseClient, datetime], page: Page
) -> None:
    server, writer, now = served
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(f"{server.url}/#clickstream")
    wait_until_every_panel_has_data(page, "clickstream")
    before = {trace["name"]: trace["y"][-1] for trace in chart_data(page, "page_views_top_pages")}

    # A later micro-batch refines the newest minute: the chart must show it at its next refresh (2 s).
    seed_page_views(writer, now, minutes=1, version=2, extra_views=500)
    page.wait_for_function(
        "() => { const el = document.querySelector('#panel-page_views_top_pages .chart');"
        " return el && el.data && el.data.some(t => t.y[t.y.length - 1] >= 500); }",
        timeout=10_000,
    )
    after = {trace["name"]: trace["y"][-1] for trace in chart_data(page, "page_views_top_pages")}
    assert {name: after[name] - value for name, value in before.items()} == dict.fromkeys(before, 500)
    page.wait_for_timeout(500)  # let plotly finish its transition before the picture is taken
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    page.click("#tabs a[data-id='pipeline']")
    wait_until_every_panel_has_data(page, "pipeline")
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "dashboard-pipeline.png"), full_page=True)


def test_range_choice_reloads_every_panel(
    served: tuple[DashboardServer, WarehouseClient, datetime], page: Page
) -> None:
    server, _writer, _now = served
    page.goto(f"{server.url}/?range=15m#clickstream")
    wait_until_every_panel_has_data(page, "clickstream")
    assert page.locator("#ranges button.active").inner_text() == "15m"
    page.click("#ranges button[data-range='24h']")
    wait_until_every_panel_has_data(page, "clickstream")
    assert page.locator("#ranges button.active").inner_text() == "24h"
    assert page.locator("#status").inner_text().startswith("live")


def test_most_clicked_urls_draws_the_page_views_per_page(
    served: tuple[DashboardServer, WarehouseClient, datetime], page: Page
) -> None:
    """The previous system's chart: one bar per page, its clicks the page views of rtap's own table."""
    server, writer, _now = served
    page.goto(f"{server.url}/#clickstream")
    wait_until_every_panel_has_data(page, "clickstream")
    # Every seeded window is within the page's default hour; read straight from page_views_1m, not the view.
    totals = writer.query_rows("SELECT page_url, sum(views) AS v FROM {db}.page_views_1m FINAL GROUP BY page_url")
    (bars,) = chart_data(page, "most_clicked_urls")
    drawn = dict(zip(bars["y"], bars["x"], strict=True))
    assert drawn == dict(totals)
    assert bars["x"] == sorted(bars["x"]), "largest on top"
