"""The newcomer's path under `rtap up` as `make run` starts it (the generator on), in Debian's Chromium: the
dashboard's "demo shop" link opens the shop that rtap up's collector serves, a product is viewed and added to the
cart, and the dashboard rtap up serves shows that visit's four events in "Latest browser events", beside the
generator's traffic in the other panels.

The generator's traffic fills every top-N panel, so one visitor's pages and session in "Most clicked URLs" and the
funnel are proven where nothing else writes: tests/e2e/test_collect_browser.py, with the collector's own scenarios
(outage, closed tab, wrong clock).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.support.browser import ARTIFACTS
from tests.support.demo_shop import (
    RECORD_MADE_EVENTS,
    add_to_cart,
    chromium,
    made_events,
    open_product,
    wait_until_sent,
)
from tests.support.pipeline import UpProcess

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

STARTED = "✓ Spark stream job running"
SHOP = "demo-field-watch"


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_click_in_the_demo_shop_shows_in_the_dashboard_of_rtap_up_beside_the_generators_traffic(
    tmp_path: Path,
) -> None:
    up = UpProcess(tmp_path, generator=True)
    try:
        up.wait_console(STARTED)
        up.wait_for("the collector's health", lambda: answers(f"{up.collector_url}/healthz"), timeout_s=120)
        with chromium() as browser:
            board = browser.new_page(viewport={"width": 1680, "height": 1050}, locale="en-US", timezone_id="UTC")
            board.context.add_init_script(RECORD_MADE_EVENTS)  # the shop opens in this context's new tab
            board.goto(f"{up.dashboard_url}/#clickstream")
            with board.expect_popup() as opened:
                board.click("#shop")
            shop = opened.value
            shop.wait_for_selector("a.card")
            assert shop.url == f"{up.collector_url}/shop/"
            open_product(shop, shop.url, SHOP)
            add_to_cart(shop, quantity=1)
            wait_until_sent(shop)  # every event answered 200: in Kafka
            sent = time.monotonic()
            made = made_events(shop)
            assert [e["type"] for e in made] == ["page_view", "page_view", "product_view", "add_to_cart"]

            board.bring_to_front()
            # The panel's rows as drawn: event_id is its last column, each cell's title the full value.
            shown = """() => Object.fromEntries([...document.querySelectorAll('#panel-browser_events tbody tr')]
                .map((tr) => [...tr.querySelectorAll('td')].map((td) => td.title))
                .map((cells) => [cells[cells.length - 1], cells]))"""
            ids = [e["event_id"] for e in made]
            board.wait_for_function(
                f"(ids) => {{ const rows = ({shown})(); return ids.every((id) => id in rows); }}",
                arg=ids,
                timeout=120_000,
                polling=250,
            )
            delay_s = time.monotonic() - sent
            rows = board.evaluate(shown)
            # event_time, event_type, page_url, product_id, user_id, session_id, event_id (dashboards.yaml)
            assert [rows[e["event_id"]][1] for e in made] == [e["type"] for e in made]
            assert {rows[e["event_id"]][4] for e in made} == {made[0]["anonymous_id"]}
            assert {rows[e["event_id"]][5] for e in made} == {made[0]["session_id"]}
            assert rows[made[2]["event_id"]][3] == SHOP

            drawn = """() => {
                const node = document.querySelector('#panel-most_clicked_urls');
                const chart = node && node.dataset.state === 'ok' ? node.querySelector('.chart') : null;
                return (chart && chart.data && chart.data[0] && chart.data[0].y) || [];
            }"""
            # The generator starts after the job's line and the panel refreshes every 5 s: the visit's events can
            # show before its traffic is aggregated and drawn, so wait for it (a timeout still fails the assert).
            with contextlib.suppress(PlaywrightTimeoutError):
                board.wait_for_function(
                    f"() => ({drawn})().filter((url) => !url.includes('/shop/')).length >= 3",
                    timeout=60_000,
                    polling=500,
                )
            urls = board.evaluate(drawn)
            assert len([url for url in urls if "/shop/" not in url]) >= 3, f"no generator traffic beside: {urls}"
            board.wait_for_timeout(800)  # plotly's transition
            ARTIFACTS.mkdir(exist_ok=True)
            board.screenshot(path=str(ARTIFACTS / "dashboard-up-demo-shop.png"), full_page=True)
            (ARTIFACTS / "dashboard-up-demo-shop.txt").write_text(
                f"the visit's 4 events in 'Latest browser events' {delay_s:.1f} s after the collector took them\n"
            )
        assert up.stop() == 0
    finally:
        up.kill()
