"""The newcomer's path under `rtap up`, in Debian's Chromium: the dashboard's "demo shop" link opens the shop
that rtap up's collector serves, a product is viewed and added to the cart, and the dashboard rtap up serves
shows that visit: its pages in "Most clicked URLs", its session in the funnel.

rtap up runs here without the generator: its traffic would fill every top-N panel and hide one visitor's few
clicks (with it, `rtap validate` proves the pipeline: tests/e2e/test_up_validate.py). The collector's own
scenarios (outage, closed tab, wrong clock) are in tests/e2e/test_collect_browser.py.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx
import pytest

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


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_click_in_the_demo_shop_shows_in_the_dashboard_of_rtap_up(tmp_path: Path) -> None:
    up = UpProcess(tmp_path)
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
            open_product(shop, shop.url, "demo-field-watch")
            add_to_cart(shop, quantity=1)
            wait_until_sent(shop)
            made = made_events(shop)
            assert [e["type"] for e in made] == ["page_view", "page_view", "product_view", "add_to_cart"]
            views = Counter(e["url"] for e in made if e["type"] in ("page_view", "product_view"))

            board.bring_to_front()
            board.wait_for_function(
                """(views) => {
                    const drawn = (id) => {
                        const node = document.querySelector(`#panel-${id}`);
                        if (!node || node.dataset.state !== 'ok') return {};
                        const trace = node.querySelector('.chart').data[0];
                        return Object.fromEntries(trace.y.map((label, i) => [label, trace.x[i]]));
                    };
                    const urls = drawn('most_clicked_urls'), funnel = drawn('conversion_funnel');
                    return Object.entries(views).every(([url, n]) => urls[url] === n)
                        && funnel['Session'] === 1 && funnel['Added to cart'] === 1 && funnel['Purchase'] === 0;
                }""",
                arg=dict(views),
                timeout=120_000,
                polling=1000,
            )
            board.wait_for_timeout(800)  # plotly's transition
            ARTIFACTS.mkdir(exist_ok=True)
            board.screenshot(path=str(ARTIFACTS / "dashboard-up-demo-shop.png"), full_page=True)
        assert up.stop() == 0
    finally:
        up.kill()
