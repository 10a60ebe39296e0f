"""Driving the built-in dashboard in Debian's headless Chromium (Playwright never downloads a browser)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page

from rtap.dashboard.definition import load_definition

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def wait_until_every_panel_has_data(page: Page, dashboard_id: str, timeout_s: float = 20) -> None:
    dashboard = next(d for d in load_definition().dashboards if d.id == dashboard_id)
    page.wait_for_function(
        "([id, n]) => document.querySelector('#grid')?.dataset.dashboard === id"
        " && document.querySelectorAll('.panel[data-state=\"ok\"]').length === n",
        arg=[dashboard_id, len(dashboard.panels)],
        timeout=timeout_s * 1000,
    )
    states = page.eval_on_selector_all(".panel", "nodes => nodes.map(n => [n.dataset.panel, n.dataset.state])")
    assert states == [[panel.id, "ok"] for panel in dashboard.panels]
    for panel in dashboard.panels:
        node = page.locator(f"#panel-{panel.id}")
        assert node.locator(".panel-updated").inner_text().startswith("updated ")
        if panel.chart.value in {"timeseries", "bar", "funnel"}:
            traces = chart_data(page, panel.id)
            assert traces, f"{panel.id}: no traces drawn"
            assert all(len(trace["x"]) > 0 for trace in traces), panel.id
            assert node.locator(".main-svg").count() > 0, f"{panel.id}: plotly drew no svg"
        elif panel.chart.value == "table":
            assert node.locator("tbody tr").count() > 0, panel.id
        else:
            assert node.locator(".number .value").count() > 0, panel.id


def chart_data(page: Page, panel_id: str) -> list[dict[str, Any]]:
    traces: list[dict[str, Any]] = page.eval_on_selector(
        f"#panel-{panel_id} .chart", "el => (el.data || []).map(t => ({name: t.name, x: t.x, y: t.y}))"
    )
    return traces
