"""Driving rtap's demo shop and its tracker in Debian's Chromium: a browser, what the tracker made, a visitor's
steps through the shop, a device clock set wrong.

What the tracker made is read from the browser itself: an init script watches the tracker's queue in
localStorage (every event passes through it before any request) and keeps a copy of each event it sees under
``rtap_test_made``, so a test knows every event of a visit, including those no request delivered yet.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS

DEMO_QUEUE = "rtap_queue_rtap-demo"
RECORD_MADE_EVENTS = """
(() => {
  const setItem = Storage.prototype.setItem;
  Storage.prototype.setItem = function (key, value) {
    if (key.startsWith("rtap_queue_")) {
      const made = JSON.parse(localStorage.getItem("rtap_test_made") || "[]");
      const known = new Set(made.map((e) => e.event_id));
      for (const event of JSON.parse(value)) if (!known.has(event.event_id)) made.push(event);
      setItem.call(localStorage, "rtap_test_made", JSON.stringify(made));
    }
    return setItem.call(this, key, value);
  };
})();
"""


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's headless Chromium, driven by Playwright (which never downloads a browser)."""
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps` (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def device_clock_off_by(offset_ms: int) -> str:
    """An init script that sets the page's clock ``offset_ms`` off: ``Date.now()`` and ``new Date()`` (what the
    tracker reads) are moved; timers and ``performance.now()`` keep running as they do on such a device."""
    return f"""
(() => {{
  const RealDate = Date;
  const offset = {offset_ms};
  class DeviceDate extends RealDate {{
    constructor(...args) {{
      if (args.length === 0) super(RealDate.now() + offset);
      else super(...args);
    }}
    static now() {{
      return RealDate.now() + offset;
    }}
  }}
  window.Date = DeviceDate;
}})();
"""


def made_events(page: Page) -> list[dict[str, Any]]:
    """Every event the tracker queued in this page's origin, in the order made (needs RECORD_MADE_EVENTS)."""
    made: list[dict[str, Any]] = page.evaluate("JSON.parse(localStorage.getItem('rtap_test_made') || '[]')")
    return made


def tracker_status(page: Page) -> dict[str, Any]:
    status: dict[str, Any] = page.evaluate("rtap.status()")
    return status


def wait_until_sent(page: Page, timeout_ms: float = 60_000) -> None:
    """Until the page's tracker holds nothing: the collector answered for every event it made."""
    page.wait_for_function("rtap.status().queued === 0", timeout=timeout_ms, polling=200)


def open_product(page: Page, shop_url: str, product_id: str) -> None:
    """From the catalogue, the product's card (a page view there, a page view and a product view here)."""
    if not page.url.startswith(f"{shop_url}index.html") and page.url != shop_url:
        page.goto(shop_url)
    with page.expect_navigation():
        page.click(f"a.card[data-product='{product_id}']")
    page.wait_for_selector("#add-to-cart")


def add_to_cart(page: Page, quantity: int) -> None:
    """On a product page: choose the quantity, click "Add to cart" (its data-rtap-* attributes make the event)."""
    page.select_option("#quantity", str(quantity))
    page.click("#add-to-cart")
    page.wait_for_selector("#added:not([hidden])")


def search(page: Page, query: str) -> None:
    with page.expect_navigation():
        page.fill("#q", query)
        page.press("#q", "Enter")
    page.wait_for_selector("a.card")


def place_order(page: Page) -> str:
    """From any shop page: the cart, the checkout, "Place order"; the order id the shop shows."""
    with page.expect_navigation():
        page.click("a.cart-link")
    with page.expect_navigation():
        page.click("#to-checkout")
    page.click("#place-order")
    page.wait_for_selector("#confirmation:not([hidden])")
    return page.inner_text("#order-id")
