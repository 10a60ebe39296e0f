"""The checks of ``rtap validate`` against a simulated stack behind ``httpx.MockTransport``.

The fake dashboard API answers with the dashboard package's own response models (``PanelResult``,
``DashboardsResponse``) over the packaged dashboards definition, so the checks are exercised against the
shapes the real API produces; the test against a running local stack lives with the integration tests.
Time never really passes: the flow check's sleep advances a fake clock.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner

from rtap.dashboard.api import RANGE_CHOICES, DashboardsResponse, PanelResult
from rtap.dashboard.definition import load_definition
from rtap.errors import ConfigError
from rtap.ops.checks import (
    COLLECTOR_PANEL,
    FLOW_PANEL,
    FRESHNESS_PANEL,
    WINDOWS_PANEL,
    CheckResult,
    CollectorTarget,
    MetabaseTarget,
    ValidationOptions,
    check_password_transport,
    run_checks,
    validate_until,
)
from rtap.ops.cli import validate

DEFINITION = load_definition()
PANEL_TITLES = {panel.id: panel.title for d in DEFINITION.dashboards for panel in d.panels}
NOW = datetime(2025, 11, 29, 12, 0, 30, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


@dataclass
class FakeStack:
    """A running rtap stack as its dashboard API shows it; fields break one thing at a time."""

    healthy: bool = True
    events_per_read: int = 250
    freshness_s: float = 1.5
    last_batch_age_s: float = 0.8
    newest_window: datetime = datetime(2025, 11, 29, 12, 0, tzinfo=UTC)
    empty_panels: set[str] = field(default_factory=set)
    # Empty, with the note the API gives when the panel's empty_until counts nothing yet.
    waiting_panels: dict[str, str] = field(default_factory=dict)
    failing_panels: set[str] = field(default_factory=set)
    flow_reads: list[dict[str, str]] = field(default_factory=list)
    # Event ids the pipeline has stored from the collector's topic (the browser events panel lists them).
    browser_event_ids: list[str] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/health":
            if not self.healthy:
                return httpx.Response(503, json={"detail": "warehouse unavailable: connection refused"})
            return httpx.Response(200, json={"status": "ok", "database": "rtap", "version": "0.1.0"})
        if path == "/api/dashboards":
            body = DashboardsResponse(
                dashboards=DEFINITION.dashboards, currency=DEFINITION.currency, ranges=RANGE_CHOICES, max_range_hours=48
            )
            return httpx.Response(200, json=body.model_dump(mode="json"))
        panel_id = path.removeprefix("/api/panels/")
        if panel_id in self.failing_panels:
            return httpx.Response(502, json={"detail": f"panel {panel_id!r} failed: Code: 60. Unknown table"})
        columns, rows = self.panel_rows(panel_id, dict(request.url.params))
        start = NOW - timedelta(hours=1)
        result = PanelResult(
            panel=panel_id,
            chart="number",
            columns=columns,
            types=["UInt64"] * len(columns),
            rows=rows,
            row_count=len(rows),
            truncated=False,
            range_from=start,
            range_to=NOW,
            elapsed_ms=3.2,
            updated_at=NOW,
            empty_note=self.waiting_panels.get(panel_id),
        )
        return httpx.Response(200, json=result.model_dump(mode="json"))

    def panel_rows(self, panel_id: str, params: dict[str, str]) -> tuple[list[str], list[list[Any]]]:
        if panel_id == FLOW_PANEL:
            self.flow_reads.append(params)
            return ["total_events", "per_second"], [[self.events_per_read * len(self.flow_reads), 4.2]]
        if panel_id == FRESHNESS_PANEL:
            return ["freshness_s", "last_batch_age_s", "batches"], [[self.freshness_s, self.last_batch_age_s, 90]]
        if panel_id == WINDOWS_PANEL:
            older = self.newest_window - timedelta(minutes=1)
            stamp = "%Y-%m-%dT%H:%M:%S.000Z"
            rows = [[older.strftime(stamp), "page_view", 900], [self.newest_window.strftime(stamp), "page_view", 80]]
            return ["minute", "event_type", "events"], rows
        if panel_id == COLLECTOR_PANEL:
            return ["event_type", "event_id"], [["page_view", event_id] for event_id in self.browser_event_ids]
        if panel_id in self.empty_panels or panel_id in self.waiting_panels:
            return ["value"], []
        return ["value"], [[1]]


@dataclass
class FakeCollector:
    """The collector's batch endpoint: what it accepts is in the stack's browser events at once (or never, when
    not ``stored``: an event that Kafka took and the pipeline lost)."""

    stack: FakeStack
    write_key: str = "wk_shop"
    stored: bool = True
    batches: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert (request.method, request.url.path) == ("POST", "/v1/batch")
        batch = json.loads(request.content)
        self.batches.append(batch)
        if batch["write_key"] != self.write_key:
            return httpx.Response(401, json={"error": "unknown write key", "reason": "unknown_write_key"})
        if self.stored:
            self.stack.browser_event_ids.extend(event["event_id"] for event in batch["events"])
        return httpx.Response(200, json={"accepted": len(batch["events"])})


@dataclass
class FakeMetabase:
    """Metabase's session, collection and card-query endpoints (shapes of v0.56)."""

    password: str = "s3cret"
    healthy: bool = True
    with_collection: bool = True
    failing_card: str | None = None
    empty_card: str | None = None
    cards: list[str] = field(default_factory=lambda: list(PANEL_TITLES.values())[:3])
    sessions: list[str] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if path == "/api/health":
            return httpx.Response(
                200 if self.healthy else 503, json={"status": "ok" if self.healthy else "initializing"}
            )
        if (method, path) == ("POST", "/api/session"):
            if json.loads(request.content)["password"] != self.password:
                return httpx.Response(401, json={"errors": {"password": "did not match stored password"}})
            self.sessions.append("0b6f0a3e-55a7")
            return httpx.Response(200, json={"id": "0b6f0a3e-55a7"})
        if request.headers.get("X-Metabase-Session") != "0b6f0a3e-55a7":
            return httpx.Response(401, text="Unauthenticated")
        if path == "/api/collection":
            collections: list[dict[str, Any]] = [{"name": "Our analytics", "id": "root"}]
            if self.with_collection:
                collections.append({"id": 7, "name": "rtap", "location": "/", "archived": False})
            return httpx.Response(200, json=collections)
        if path == "/api/collection/7/items":
            assert request.url.params["models"] == "card"
            items = [{"id": i, "name": name, "model": "card"} for i, name in enumerate(self.cards, start=10)]
            return httpx.Response(200, json={"data": items, "total": len(items)})
        card_name = self.cards[int(path.split("/")[3]) - 10]
        if card_name == self.failing_card:
            body: dict[str, Any] = {"status": "failed", "error": "Code: 47. Unknown identifier", "row_count": 0}
            return httpx.Response(202, json=body)
        rows = [] if card_name == self.empty_card else [[1, 2]]
        body = {"status": "completed", "row_count": len(rows), "running_time": 17, "data": {"rows": rows}}
        return httpx.Response(202, json=body)


def run(
    stack: FakeStack,
    metabase: FakeMetabase | None = None,
    collector: FakeCollector | None = None,
    write_key: str = "wk_shop",
    **options: Any,
) -> tuple[dict[str, CheckResult], FakeClock]:
    clock = FakeClock()
    api = httpx.Client(base_url="http://rtap.test:8050", transport=httpx.MockTransport(stack.handle))
    target = None
    if metabase is not None:
        mb = httpx.Client(base_url="http://rtap.test:3000", transport=httpx.MockTransport(metabase.handle))
        target = MetabaseTarget(mb, "admin@rtap.local", "s3cret")
    collector_target = None
    if collector is not None:
        http = httpx.Client(base_url="http://rtap.test:8070", transport=httpx.MockTransport(collector.handle))
        collector_target = CollectorTarget(http, write_key)
    results = run_checks(
        api, ValidationOptions(**options), target, collector_target, sleep=clock.sleep, monotonic=clock.monotonic
    )
    by_name = {result.name: result for result in results}
    return by_name, clock


def failed(results: dict[str, CheckResult]) -> set[str]:
    return {name for name, result in results.items() if not result.ok}


def test_a_working_stack_passes_every_check_with_its_figures() -> None:
    results, _ = run(FakeStack())
    assert failed(results) == set()
    assert results["dashboard API healthy"].detail == "status ok (database rtap, version 0.1.0)"
    assert results["dashboards listed"].detail == f"{len(DEFINITION.dashboards)} dashboards, {len(PANEL_TITLES)} panels"
    assert results["events flowing"].detail == "events_total.total_events 250 -> 500 (+250)"
    assert "finished 0.8 s ago (bound 60 s)" in results["pipeline fresh"].detail
    assert results["newest window fresh"].detail.startswith("newest window starts 2025-11-29T12:00:00Z, 30 s ago")
    panel_checks = [name for name in results if name.startswith("panel ")]
    assert len(panel_checks) == len(PANEL_TITLES)
    assert results["panel clickstream/active_users"].line() == "✓ panel clickstream/active_users: 1 rows in 3.2 ms"


def test_an_event_posted_to_the_collector_is_found_in_the_warehouse() -> None:
    stack = FakeStack()
    collector = FakeCollector(stack)
    results, _ = run(stack, collector=collector)
    assert failed(results) == set()
    (batch,) = collector.batches
    (event,) = batch["events"]
    assert (event["type"], event["url"], batch["sent_at"]) == (
        "page_view",
        "https://rtap.invalid/validate",
        event["created_at"],
    )
    assert (
        results["collector to warehouse"].detail == f"event {event['event_id']} accepted, in browser_events after 0.0 s"
    )


def test_a_refused_or_unstored_collector_event_fails_with_the_reason() -> None:
    refused, _ = run(FakeStack(), collector=FakeCollector(FakeStack()), write_key="wk_other")
    assert failed(refused) == {"collector to warehouse", f"panel clickstream/{COLLECTOR_PANEL}"}
    assert "HTTP 401" in refused["collector to warehouse"].detail
    assert "unknown write key" in refused["collector to warehouse"].detail
    stack = FakeStack()
    lost, clock = run(stack, collector=FakeCollector(stack, stored=False), flow_timeout_s=20)
    assert "accepted but not in browser_events within 20 s" in lost["collector to warehouse"].detail
    assert clock.now >= 20


def test_without_a_collector_its_panel_may_be_empty() -> None:
    results, _ = run(FakeStack())
    assert "collector to warehouse" not in results
    assert results[f"panel clickstream/{COLLECTOR_PANEL}"].detail == "0 rows in 3.2 ms (allowed to be empty)"


def test_the_flow_check_keeps_the_start_fixed_and_waits_for_growth() -> None:
    stack = FakeStack()
    run(stack)
    # The third read is the events_total panel's own check.
    first, second, _ = stack.flow_reads
    assert first == {}
    assert second == {"from": (NOW - timedelta(hours=1)).isoformat().replace("+00:00", "Z")}


def test_no_new_events_fails_after_the_flow_timeout() -> None:
    results, clock = run(FakeStack(events_per_read=0), flow_timeout_s=10, flow_poll_s=2)
    assert failed(results) == {"events flowing"}
    assert (
        results["events flowing"].line()
        == "✗ events flowing: events_total.total_events 0 -> 0: no new events within 10 s"
    )
    assert clock.now == 10


def test_stale_pipeline_and_old_windows_fail_against_the_bound() -> None:
    stale = FakeStack(last_batch_age_s=95.0, newest_window=datetime(2025, 11, 29, 11, 55, tzinfo=UTC))
    results, _ = run(stale, freshness_s=60)
    assert failed(results) == {"pipeline fresh", "newest window fresh"}
    assert "11:55:00Z, 330 s ago (bound 120 s)" in results["newest window fresh"].detail
    # A wider bound accepts the same stack.
    results, _ = run(stale, freshness_s=300)
    assert failed(results) == set()


def test_an_empty_or_failing_panel_fails_unless_allowed_empty() -> None:
    stack = FakeStack(empty_panels={"bot_suspects"}, failing_panels={"top_products"})
    results, _ = run(stack)
    assert failed(results) == {"panel clickstream/bot_suspects", "panel clickstream/top_products"}
    assert results["panel clickstream/bot_suspects"].detail == "0 rows in 3.2 ms"
    top = results["panel clickstream/top_products"].detail
    assert top.startswith("GET http://rtap.test:8050/api/panels/top_products: HTTP 502")
    assert "Unknown table" in top

    results, _ = run(stack, allow_empty=frozenset({"bot_suspects"}))
    assert results["panel clickstream/bot_suspects"].ok
    assert results["panel clickstream/bot_suspects"].detail.endswith("(allowed to be empty)")


def test_a_panel_empty_because_nothing_it_shows_can_exist_yet_passes_with_the_reason_and_so_does_its_card() -> None:
    note = "No session in this range has ended yet"
    stack = FakeStack(waiting_panels={"abandoned_carts": note})
    title = PANEL_TITLES["abandoned_carts"]
    metabase = FakeMetabase(empty_card=title, cards=[title, PANEL_TITLES["bot_suspects"]])
    results, _ = run(stack, metabase)
    assert failed(results) == set()
    assert results["panel clickstream/abandoned_carts"].line() == (
        f"✓ panel clickstream/abandoned_carts: 0 rows in 3.2 ms: {note}"
    )
    assert results[f"Metabase card {title}"].line() == f"✓ Metabase card {title}: 0 rows in 17 ms (allowed to be empty)"
    # Without the note (sessions have ended, and still no row) both fail.
    results, _ = run(FakeStack(empty_panels={"abandoned_carts"}), metabase)
    assert failed(results) == {"panel clickstream/abandoned_carts", f"Metabase card {title}"}


def test_an_unhealthy_dashboard_skips_the_data_checks() -> None:
    results, _ = run(FakeStack(healthy=False))
    assert set(results) == {"dashboard API healthy", "dashboards listed"}
    assert "HTTP 503" in results["dashboard API healthy"].detail
    assert not results["dashboard API healthy"].ok


def test_an_unreachable_dashboard_is_one_failed_line() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    api = httpx.Client(base_url="http://rtap.test:8050", transport=httpx.MockTransport(refuse))
    results = list(run_checks(api, ValidationOptions()))
    assert [r.line() for r in results] == [
        "✗ dashboard API healthy: GET http://rtap.test:8050/api/health: [Errno 111] Connection refused",
        "✗ dashboards listed: GET http://rtap.test:8050/api/dashboards: [Errno 111] Connection refused",
    ]


def test_metabase_cards_of_the_rtap_collection_are_run() -> None:
    metabase = FakeMetabase()
    results, _ = run(FakeStack(), metabase)
    assert failed(results) == set()
    assert results["Metabase healthy"].detail == "status ok"
    card_lines = [r.line() for name, r in results.items() if name.startswith("Metabase card ")]
    assert card_lines == [f"✓ Metabase card {title}: 1 rows in 17 ms" for title in metabase.cards]
    assert metabase.sessions == ["0b6f0a3e-55a7"]


def test_metabase_failures_are_reported_per_card() -> None:
    first, second, third = list(PANEL_TITLES)[:3]
    metabase = FakeMetabase(failing_card=PANEL_TITLES[first], empty_card=PANEL_TITLES[second])
    results, _ = run(FakeStack(), metabase)
    assert failed(results) == {f"Metabase card {PANEL_TITLES[first]}", f"Metabase card {PANEL_TITLES[second]}"}
    assert results[f"Metabase card {PANEL_TITLES[first]}"].detail == "status failed: Code: 47. Unknown identifier"
    # The empty card is allowed by its panel id, as on the dashboard.
    results, _ = run(FakeStack(), metabase, allow_empty=frozenset({second}))
    assert failed(results) == {f"Metabase card {PANEL_TITLES[first]}"}
    assert results[f"Metabase card {PANEL_TITLES[third]}"].ok


@pytest.mark.parametrize(
    ("metabase", "name", "detail"),
    [
        (FakeMetabase(healthy=False), "Metabase healthy", "GET http://rtap.test:3000/api/health: HTTP 503"),
        (FakeMetabase(with_collection=False), "Metabase cards", "no 'rtap' collection (provisioned?)"),
        (FakeMetabase(password="other"), "Metabase cards", "POST http://rtap.test:3000/api/session: HTTP 401"),
        (FakeMetabase(cards=[]), "Metabase cards", "the 'rtap' collection has no cards"),
    ],
)
def test_metabase_problems_fail_with_the_reason(metabase: FakeMetabase, name: str, detail: str) -> None:
    results, _ = run(FakeStack(), metabase)
    assert failed(results) == {name}
    assert results[name].detail.startswith(detail)


def test_validate_until_retries_only_while_time_is_left() -> None:
    clock = FakeClock()
    outcomes = iter([False, False, True])
    retried: list[int] = []

    def attempt() -> list[CheckResult]:
        return [CheckResult("x", next(outcomes), "figure")]

    final = validate_until(
        attempt,
        60,
        retry_every_s=10,
        on_retry=lambda f: retried.append(len(f)),
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    )
    assert [r.ok for r in final] == [True]
    assert retried == [1, 1]
    assert clock.now == 20

    clock = FakeClock()
    final = validate_until(
        lambda: [CheckResult("x", False, "f")], 25, retry_every_s=10, sleep=clock.sleep, monotonic=clock.monotonic
    )
    assert not final[0].ok
    assert clock.now == 20  # a third wait would pass the deadline, so it stops after two


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(validate)
    return app


def test_cli_rejects_a_target_that_is_not_an_http_url() -> None:
    result = CliRunner().invoke(_cli(), ["--target", "ftp://host:8050"])
    assert result.exit_code != 0
    assert "--target must be an http:// or https:// URL" in str(result.exception)


def test_cli_needs_the_metabase_password_when_metabase_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTAP_METABASE_ADMIN_PASSWORD", "")
    result = CliRunner().invoke(_cli(), ["--target", "http://127.0.0.1:9", "--metabase", "http://127.0.0.1:9"])
    assert "RTAP_METABASE_ADMIN_PASSWORD" in str(result.exception)


def test_cli_against_a_closed_port_prints_failed_lines_and_exits_non_zero() -> None:
    # Port 9 (discard) is not served on a test machine: a real connection refusal.
    result = CliRunner().invoke(_cli(), ["--target", "http://127.0.0.1:9", "--timeout-s", "2"])
    assert result.exit_code != 0
    assert "✗ dashboard API healthy: GET http://127.0.0.1:9/api/health:" in result.output
    assert "2 checks failed: dashboard API healthy, dashboards listed" in str(result.exception)


def test_the_panels_and_columns_validate_reads_exist_in_the_packaged_definition() -> None:
    """The fake stack above answers whatever validate asks; this pins those names to the real definition."""
    from rtap.ops.checks import FLOW_COLUMN, FLOW_PANEL, FRESHNESS_PANEL, WINDOW_COLUMN, WINDOWS_PANEL

    sql = {panel.id: panel.sql for dashboard in load_definition().dashboards for panel in dashboard.panels}
    assert f"AS {FLOW_COLUMN}" in sql[FLOW_PANEL]
    assert f"AS {WINDOW_COLUMN}" in sql[WINDOWS_PANEL]
    assert FRESHNESS_PANEL in sql


@pytest.mark.parametrize(
    "url",
    [
        "http://203.0.113.5:8050",
        "http://dashboard.example",
        "http://localhost.localdomain:3000",
        "http://[2001:db8::1]",
    ],
)
def test_a_password_is_never_sent_in_plain_http_beyond_loopback(url: str) -> None:
    with pytest.raises(ConfigError, match="plain HTTP beyond loopback") as refused:
        check_password_transport(url, "--target")
    assert url in str(refused.value)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:18050", "http://localhost:3000", "http://[::1]:8050", "https://dashboard.example:9443"]
)
def test_a_password_goes_over_tls_or_to_loopback(url: str) -> None:
    check_password_transport(url, "--target")


def test_rtap_validate_refuses_before_it_sends_the_password() -> None:
    """Nothing listens at the target: the refusal comes before any connection."""
    env = {**os.environ, "RTAP_DASHBOARD_PASSWORD": secrets.token_hex(8), "RTAP_METRICS_ENABLED": "false"}
    result = subprocess.run(
        [sys.executable, "-m", "rtap", "validate", "--target", "http://192.0.2.1:8050", "--skip-collector"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: --target http://192.0.2.1:8050 is plain HTTP beyond loopback")
