"""The end-to-end checks of ``rtap validate``: is a running rtap stack (local, compose or cloud) working?

Everything is judged from outside, over the same HTTP APIs a person would use, so one command validates
every deployment mode:

- the dashboard API is healthy (``/api/health``: the warehouse answers);
- events are flowing: a count over a fixed start and an end of "now" grows between two reads;
- where a collector is given: an event in the tracker's format (``browser-event.v1``) posted to it is accepted
  and appears in the warehouse (the ``browser_events`` panel), so the public door is checked end to end;
- the pipeline is fresh: the last micro-batch and the newest one-minute window are recent;
- every panel of every dashboard returns rows (``/api/dashboards``, ``/api/panels/{id}``);
- where Metabase is given: it is healthy, and every card of the ``rtap`` collection runs and returns rows.

Each check yields one :class:`CheckResult` (a name, pass/fail and the figure behind it); the caller prints
one line per result and fails when any did. Times are the server's (``updated_at`` of a panel answer), so
a skewed laptop clock cannot make a fresh cloud stack look stale.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from rtap.dashboard.auth import SESSION_COOKIE
from rtap.errors import ConfigError, ServiceError
from rtap.http_json import request_json
from rtap.settings import is_loopback

# The panels of dashboards.yaml the flow and freshness checks read (their SQL defines the figures).
FLOW_PANEL, FLOW_COLUMN = "events_total", "total_events"
FRESHNESS_PANEL = "freshness"
WINDOWS_PANEL, WINDOW_COLUMN = "events_by_type", "minute"
# Width of the windowed tables (*_1m): the newest window may have started this much before the bound.
WINDOW = timedelta(minutes=1)
METABASE_COLLECTION = "rtap"
# The panel that lists the events read from the collector's topic, and where the collector takes a batch.
COLLECTOR_PANEL, COLLECTOR_COLUMN = "browser_events", "event_id"
COLLECTOR_BATCH = "/v1/batch"
# The validation event's page: a reserved name (RFC 2606), so it never looks like a real page in the tables.
VALIDATION_URL = "https://rtap.invalid/validate"

Sleep = Callable[[float], None]
Clock = Callable[[], float]


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome and the figure that decided it."""

    name: str
    ok: bool
    detail: str
    # A panel that is empty because what it shows cannot exist yet (its Metabase card may be empty too).
    waiting: bool = False

    def line(self) -> str:
        return f"{'✓' if self.ok else '✗'} {self.name}: {self.detail}"


@dataclass(frozen=True)
class ValidationOptions:
    """Bounds of a validation run (the CLI's options)."""

    freshness_s: float = 60.0
    # How long the flow check keeps re-reading before it decides nothing arrives.
    flow_timeout_s: float = 30.0
    flow_poll_s: float = 2.0
    # Panel ids whose queries may legitimately be empty in this run (e.g. no bots in a short demo).
    allow_empty: frozenset[str] = frozenset()


@dataclass(frozen=True)
class MetabaseTarget:
    """A Metabase to check, and the admin account that may run the ``rtap`` collection's cards."""

    client: httpx.Client
    email: str
    password: str


@dataclass(frozen=True)
class CollectorTarget:
    """A collector to post a validation event to, with a write key it accepts (sent without ``Origin``)."""

    client: httpx.Client
    write_key: str


@dataclass(frozen=True)
class PanelRef:
    id: str
    title: str
    dashboard: str


@dataclass
class _Timer:
    sleep: Sleep = field(default=time.sleep)
    monotonic: Clock = field(default=time.monotonic)


def _instant(value: Any) -> datetime:
    """An ISO 8601 instant from the API ('Z' or an offset) as an aware datetime."""
    return datetime.fromisoformat(str(value))


def _panel(api: httpx.Client, panel_id: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
    result = request_json(api, "GET", f"/api/panels/{panel_id}", params=params)
    if not isinstance(result, dict) or not isinstance(result.get("rows"), list):
        raise ServiceError(f"panel {panel_id}: the answer has no 'rows' list")
    return result


def _number(result: Mapping[str, Any], column: str) -> float | None:
    """The value of ``column`` in a one-row (number) panel; None when the panel has no row or a NULL."""
    columns = result.get("columns", [])
    if column not in columns:
        raise ServiceError(f"panel {result.get('panel')}: no column {column!r} (has {', '.join(columns)})")
    if not result["rows"]:
        return None
    value = result["rows"][0][columns.index(column)]
    return None if value is None else float(value)


def check_dashboard_health(api: httpx.Client) -> CheckResult:
    name = "dashboard API healthy"
    try:
        health = request_json(api, "GET", "/api/health")
    except ServiceError as exc:
        return CheckResult(name, False, str(exc))
    status = health.get("status") if isinstance(health, dict) else None
    facts = ", ".join(f"{key} {value}" for key, value in health.items() if key != "status") if status else ""
    return CheckResult(name, status == "ok", f"status {status}" + (f" ({facts})" if facts else ""))


def list_panels(api: httpx.Client) -> tuple[CheckResult, list[PanelRef]]:
    """Every panel of every dashboard the API serves, and a check that there are some."""
    name = "dashboards listed"
    try:
        listing = request_json(api, "GET", "/api/dashboards")
        panels = [
            PanelRef(id=str(panel["id"]), title=str(panel["title"]), dashboard=str(dashboard["id"]))
            for dashboard in listing["dashboards"]
            for panel in dashboard["panels"]
        ]
    except ServiceError as exc:
        return CheckResult(name, False, str(exc)), []
    except (KeyError, TypeError) as exc:
        return CheckResult(name, False, f"/api/dashboards has an unexpected shape: missing {exc}"), []
    dashboards = len({panel.dashboard for panel in panels})
    return CheckResult(name, bool(panels), f"{dashboards} dashboards, {len(panels)} panels"), panels


def check_password_transport(url: str, option: str) -> None:
    """ConfigError if rtap would send a password to ``url`` in clear: plain HTTP to a host beyond loopback (an
    SSH tunnel ends on loopback, TLS is https)."""
    parsed = httpx.URL(url)
    if parsed.scheme == "http" and not is_loopback(parsed.host):
        raise ConfigError(
            f"{option} {url} is plain HTTP beyond loopback, where the password rtap logs in with would travel in "
            "clear: use its https:// address, or an SSH tunnel to it and http://127.0.0.1"
        )


def dashboard_login(api: httpx.Client, password: str) -> None:
    """Log ``api`` in to a dashboard that asks for a password; its session cookie stays in the client."""
    where = f"POST {api.build_request('POST', '/login').url}"
    try:
        response = api.post("/login", data={"password": password}, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise ServiceError(f"{where}: {exc or type(exc).__name__}") from exc
    if response.status_code == 401:
        raise ConfigError(f"{where}: the dashboard refused the password in RTAP_DASHBOARD_PASSWORD")
    if response.status_code != 303 or SESSION_COOKIE not in api.cookies:
        raise ServiceError(f"{where}: HTTP {response.status_code}, no session (a dashboard without a login?)")


def check_panel(api: httpx.Client, panel: PanelRef, allow_empty: frozenset[str]) -> CheckResult:
    name = f"panel {panel.dashboard}/{panel.id}"
    try:
        result = _panel(api, panel.id)
    except ServiceError as exc:
        return CheckResult(name, False, str(exc))
    rows = len(result["rows"])
    elapsed = result.get("elapsed_ms")
    figure = f"{rows} rows" + (f" in {elapsed} ms" if elapsed is not None else "")
    if rows == 0 and panel.id in allow_empty:
        return CheckResult(name, True, f"{figure} (allowed to be empty)")
    if rows == 0 and result.get("empty_note"):  # nothing it shows can exist yet (the panel's empty_until)
        return CheckResult(name, True, f"{figure}: {result['empty_note']}", waiting=True)
    return CheckResult(name, rows > 0, figure)


def check_events_flowing(api: httpx.Client, options: ValidationOptions, timer: _Timer) -> CheckResult:
    """Re-read a count with the same start and a later end until it grows (or the timeout passes)."""
    name = "events flowing"
    try:
        first = _panel(api, FLOW_PANEL)
        start = str(first["range_from"])
        before = _number(first, FLOW_COLUMN) or 0.0
        deadline = timer.monotonic() + options.flow_timeout_s
        after = before
        while after <= before and timer.monotonic() < deadline:
            timer.sleep(options.flow_poll_s)
            later = _panel(api, FLOW_PANEL, {"from": start})
            after = _number(later, FLOW_COLUMN) or 0.0
    except (ServiceError, KeyError) as exc:
        return CheckResult(name, False, str(exc))
    figure = f"{FLOW_PANEL}.{FLOW_COLUMN} {before:.0f} -> {after:.0f}"
    if after > before:
        return CheckResult(name, True, f"{figure} (+{after - before:.0f})")
    return CheckResult(name, False, f"{figure}: no new events within {options.flow_timeout_s:g} s")


def validation_batch(write_key: str, event_id: str, now: datetime) -> dict[str, Any]:
    """One page view as the tracker sends it (a batch of one), marked as ``rtap validate``'s own."""
    at = now.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    event = {
        "event_id": event_id,
        "type": "page_view",
        "created_at": at,
        "anonymous_id": "rtap-validate",
        "session_id": f"rtap-validate-{event_id}",
        "url": VALIDATION_URL,
        "title": "rtap validate",
    }
    return {"write_key": write_key, "sent_at": at, "events": [event]}


def check_collector_round_trip(
    collector: CollectorTarget, api: httpx.Client, options: ValidationOptions, timer: _Timer
) -> CheckResult:
    """Post one event to the collector, then re-read the browser events panel until it shows it.

    A 200 from the collector means the event is in Kafka (acks=all); finding it in the panel means the stream
    job read the collector's topic, validated the tracker's format and stored it. The event is a real page view
    of :data:`VALIDATION_URL`, counted like any other (one per run of this check).
    """
    name = "collector to warehouse"
    event_id = str(uuid.uuid4())
    try:
        answer = request_json(
            collector.client, "POST", COLLECTOR_BATCH, body=validation_batch(collector.write_key, event_id, _now())
        )
        if not isinstance(answer, dict) or answer.get("accepted") != 1:
            return CheckResult(name, False, f"POST {COLLECTOR_BATCH}: expected {{'accepted': 1}}, got {answer!r}")
        posted = timer.monotonic()
        deadline = posted + options.flow_timeout_s
        while True:
            result = _panel(api, COLLECTOR_PANEL)
            columns = result.get("columns", [])
            if COLLECTOR_COLUMN not in columns:
                raise ServiceError(f"panel {COLLECTOR_PANEL}: no column {COLLECTOR_COLUMN!r}")
            index = columns.index(COLLECTOR_COLUMN)
            if any(str(row[index]) == event_id for row in result["rows"]):
                waited = timer.monotonic() - posted
                return CheckResult(name, True, f"event {event_id} accepted, in {COLLECTOR_PANEL} after {waited:.1f} s")
            if timer.monotonic() >= deadline:
                return CheckResult(
                    name,
                    False,
                    f"event {event_id} accepted but not in {COLLECTOR_PANEL} within {options.flow_timeout_s:g} s",
                )
            timer.sleep(options.flow_poll_s)
    except ServiceError as exc:
        return CheckResult(name, False, str(exc))


def _now() -> datetime:
    return datetime.now(UTC)


def check_pipeline_fresh(api: httpx.Client, options: ValidationOptions) -> CheckResult:
    """The last micro-batch finished recently, and its data was recent when it did."""
    name = "pipeline fresh"
    try:
        result = _panel(api, FRESHNESS_PANEL)
        freshness = _number(result, "freshness_s")
        batch_age = _number(result, "last_batch_age_s")
    except ServiceError as exc:
        return CheckResult(name, False, str(exc))
    if freshness is None or batch_age is None:
        return CheckResult(name, False, "no micro-batch has finished in the dashboard's range")
    figure = f"data {freshness:g} s old at the last batch, which finished {batch_age:g} s ago"
    ok = freshness <= options.freshness_s and batch_age <= options.freshness_s
    return CheckResult(name, ok, f"{figure} (bound {options.freshness_s:g} s)")


def check_newest_window(api: httpx.Client, options: ValidationOptions) -> CheckResult:
    """The newest one-minute window is at most one window width plus the bound old (server time)."""
    name = "newest window fresh"
    try:
        result = _panel(api, WINDOWS_PANEL)
        columns = result.get("columns", [])
        if WINDOW_COLUMN not in columns:
            raise ServiceError(f"panel {WINDOWS_PANEL}: no column {WINDOW_COLUMN!r}")
        index = columns.index(WINDOW_COLUMN)
        starts = [_instant(row[index]) for row in result["rows"] if row[index] is not None]
        now = _instant(result["updated_at"])
    except (ServiceError, KeyError, ValueError) as exc:
        return CheckResult(name, False, str(exc))
    if not starts:
        return CheckResult(name, False, f"no window in {WINDOWS_PANEL}'s range")
    newest = max(starts)
    age = (now - newest).total_seconds()
    bound = (WINDOW + timedelta(seconds=options.freshness_s)).total_seconds()
    figure = f"newest window starts {newest:%Y-%m-%dT%H:%M:%SZ}, {age:.0f} s ago (bound {bound:g} s)"
    return CheckResult(name, age <= bound, figure)


def check_metabase_health(metabase: MetabaseTarget) -> CheckResult:
    name = "Metabase healthy"
    try:
        health = request_json(metabase.client, "GET", "/api/health")
    except ServiceError as exc:
        return CheckResult(name, False, str(exc))
    status = health.get("status") if isinstance(health, dict) else None
    return CheckResult(name, status == "ok", f"status {status}")


def check_metabase_cards(
    metabase: MetabaseTarget, panel_ids_by_title: Mapping[str, str], allow_empty: frozenset[str]
) -> list[CheckResult]:
    """Log in, find the ``rtap`` collection and run each of its cards."""
    mb = metabase.client
    try:
        session = request_json(
            mb, "POST", "/api/session", body={"username": metabase.email, "password": metabase.password}
        )
        mb.headers["X-Metabase-Session"] = str(session["id"])
        collections = request_json(mb, "GET", "/api/collection")
        collection = next(
            (
                found
                for found in collections
                if found.get("name") == METABASE_COLLECTION
                and found.get("location", "/") == "/"
                and not found.get("archived")
            ),
            None,
        )
        if collection is None:
            return [CheckResult("Metabase cards", False, f"no '{METABASE_COLLECTION}' collection (provisioned?)")]
        items = request_json(mb, "GET", f"/api/collection/{collection['id']}/items", params={"models": "card"})
        cards = [item for item in _listing(items) if item.get("model") == "card"]
    except (ServiceError, KeyError, TypeError) as exc:
        return [CheckResult("Metabase cards", False, str(exc))]
    if not cards:
        return [CheckResult("Metabase cards", False, f"the '{METABASE_COLLECTION}' collection has no cards")]
    return [_run_card(mb, card, panel_ids_by_title, allow_empty) for card in cards]


def _listing(found: Any) -> list[dict[str, Any]]:
    # Metabase answers some lists bare and others as {"data": [...], "total": n}.
    items = found.get("data", []) if isinstance(found, dict) else found
    if not isinstance(items, list):
        raise ServiceError(f"expected a list from Metabase, got {type(items).__name__}")
    return items


def _run_card(
    mb: httpx.Client, card: Mapping[str, Any], panel_ids_by_title: Mapping[str, str], allow_empty: frozenset[str]
) -> CheckResult:
    name = f"Metabase card {card['name']}"
    try:
        result = request_json(mb, "POST", f"/api/card/{card['id']}/query")
    except ServiceError as exc:
        return CheckResult(name, False, str(exc))
    if result.get("status") != "completed":
        return CheckResult(name, False, f"status {result.get('status')}: {result.get('error', 'no error given')}")
    rows = len((result.get("data") or {}).get("rows") or [])
    elapsed = result.get("running_time")
    figure = f"{rows} rows" + (f" in {elapsed} ms" if elapsed is not None else "")
    if rows == 0 and panel_ids_by_title.get(str(card["name"])) in allow_empty:
        return CheckResult(name, True, f"{figure} (allowed to be empty)")
    return CheckResult(name, rows > 0, figure)


def run_checks(
    dashboard: httpx.Client,
    options: ValidationOptions,
    metabase: MetabaseTarget | None = None,
    collector: CollectorTarget | None = None,
    *,
    sleep: Sleep = time.sleep,
    monotonic: Clock = time.monotonic,
) -> Iterator[CheckResult]:
    """Every check, in the order a person would look: health, flow, the collector, freshness, panels, Metabase.

    Without a collector nothing need have come from one, so its panel may be empty."""
    timer = _Timer(sleep=sleep, monotonic=monotonic)
    allow_empty = options.allow_empty if collector is not None else options.allow_empty | {COLLECTOR_PANEL}
    health = check_dashboard_health(dashboard)
    yield health
    listed, panels = list_panels(dashboard)
    yield listed
    if health.ok:
        yield check_events_flowing(dashboard, options, timer)
        if collector is not None:
            yield check_collector_round_trip(collector, dashboard, options, timer)
        yield check_pipeline_fresh(dashboard, options)
        yield check_newest_window(dashboard, options)
        for panel in panels:
            result = check_panel(dashboard, panel, allow_empty)
            if result.waiting:
                allow_empty |= {panel.id}
            yield result
    if metabase is not None:
        metabase_health = check_metabase_health(metabase)
        yield metabase_health
        if metabase_health.ok:
            titles = {panel.title: panel.id for panel in panels}
            yield from check_metabase_cards(metabase, titles, allow_empty)


def validate_until(
    attempt: Callable[[], Sequence[CheckResult]],
    wait_s: float,
    *,
    retry_every_s: float = 10.0,
    on_retry: Callable[[Sequence[CheckResult]], None] = lambda failed: None,
    sleep: Sleep = time.sleep,
    monotonic: Clock = time.monotonic,
) -> list[CheckResult]:
    """Run ``attempt`` until every check passes or ``wait_s`` is spent; the last attempt's results.

    A stack that was just started (a fresh cloud host takes minutes to pull images and fill its first
    windows) fails at first for reasons that pass by themselves; waiting belongs to the caller's choice.
    """
    deadline = monotonic() + wait_s
    while True:
        results = list(attempt())
        failed = [result for result in results if not result.ok]
        if not failed or monotonic() + retry_every_s > deadline:
            return results
        on_retry(failed)
        sleep(retry_every_s)
