"""The built-in dashboard's HTTP API and page (FastAPI).

Only the SQL of the definition ever runs: a request names a panel, never a query, and the time range
is bound as ClickHouse query parameters. The client handed in is expected to be read-only
(``create_client(..., readonly=True)``), so even a bad definition cannot write. Results are capped at
``MAX_ROWS`` rows by wrapping the panel query, which works the same on every backend.

A client sees a status and a reason naming the parameter or the panel, never the engine's message: that
carries table names, query text, paths and host names, which are the operator's business, so it goes to the
log (logger ``rtap.dashboard.api``) and the body says where to look.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from importlib import resources
from string import Template
from typing import Annotated, Any
from urllib.parse import parse_qsl

import orjson
import pyarrow as pa
from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import FileResponse, HTMLResponse, Response
from pydantic import BaseModel
from starlette.types import Scope

from rtap import __version__, metrics
from rtap.addresses import ClientAddress
from rtap.dashboard.admission import Admission, CachedAnswers, ClientRateLimit, ResultCache
from rtap.dashboard.auth import Gate, Password
from rtap.dashboard.definition import Dashboard, Definition, Panel, load_definition, setting_parameters
from rtap.errors import BusyError, RetryableWarehouseError, WarehouseError
from rtap.settings import Settings, is_loopback
from rtap.warehouse import WarehouseClient

log = logging.getLogger(__name__)

# Enough for a 24 h timeseries at 10 s resolution; beyond that a chart is unreadable anyway.
MAX_ROWS = 10_000
# The ranges the page offers (minutes); the API accepts any range up to max_range_hours.
RANGE_CHOICES = {"15m": 15, "1h": 60, "6h": 360, "24h": 1440}
STATIC_FILES = {"app.js": "text/javascript", "style.css": "text/css"}
# Results kept at once (panels x ranges in use: ~20 x 4); each is at most MAX_ROWS rows.
CACHE_ENTRIES = 128
PANEL_PATH = "/api/panels/"
PANELS_PATH = "/api/panels"
RETRY_AFTER = {"Retry-After": "1"}


class PanelResult(BaseModel):
    """One panel's data: column names, rows in column order, and when and over which range it ran."""

    panel: str
    chart: str
    columns: list[str]
    types: list[str]
    rows: list[list[Any]]
    row_count: int
    truncated: bool
    range_from: datetime
    range_to: datetime
    elapsed_ms: float
    updated_at: datetime
    # With no rows: why there can be none yet, when the panel's ``empty_until`` says so (nothing is wrong).
    empty_note: str | None = None


class PanelRefusal(BaseModel):
    status: int
    detail: str
    retry_after_s: int | None = None


class PanelOrRefusal(BaseModel):
    """In a several-panel answer: a panel's result, or ``error`` when it has none."""

    error: PanelRefusal | None = None


class PanelsResult(BaseModel):
    """Panel id -> its :class:`PanelResult`, or ``{"error": ...}`` (``/api/panels?ids=...``)."""

    panels: dict[str, PanelResult | PanelOrRefusal]


class Health(BaseModel):
    status: str
    database: str
    version: str


class DashboardsResponse(BaseModel):
    dashboards: list[Dashboard]
    currency: str
    ranges: dict[str, int]
    max_range_hours: int
    # The collector's port: the page links to the demo shop it serves, on the host the page came from.
    collector_port: int | None = None


# ClickHouse's DateTime64 range: instants outside it cannot be bound as query parameters.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2299, 12, 31, tzinfo=UTC)
# How much of a bad value a refusal quotes: enough to recognise it, not an echo of whatever was sent.
_ECHO_CHARS = 40


def echo(value: str) -> str:
    """``value`` quoted for an error body, cut to :data:`_ECHO_CHARS` characters."""
    return repr(value if len(value) <= _ECHO_CHARS else value[:_ECHO_CHARS] + "…")


def parse_instant(value: str, name: str) -> datetime:
    """An ISO 8601 instant as an aware UTC datetime; a naive one is taken as UTC (rtap stores UTC).
    HTTP 400 naming the parameter when it is none, or when its offset moves it out of Python's calendar."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise HTTPException(400, f"'{name}' is not an ISO 8601 date-time: {echo(value)}") from exc
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+01:00 is in year 0 in UTC
        raise HTTPException(400, _outside(name, value)) from exc


def _outside(name: str, value: str) -> str:
    return f"'{name}' ({echo(value)}) is outside {EARLIEST.year}..{LATEST.year}"


def resolve_range(
    raw_from: str | None, raw_to: str | None, *, default_minutes: int, max_hours: int, now: datetime
) -> tuple[datetime, datetime]:
    """The requested [from, to) range, defaulted and checked; HTTP 400 naming the parameter when it is unusable."""
    end = parse_instant(raw_to, "to") if raw_to else now
    if raw_from:
        start = parse_instant(raw_from, "from")
    elif end < EARLIEST:  # the default range would start before year 1 (?to=0001-01-01): no arithmetic
        raise HTTPException(400, _outside("to", end.isoformat()))
    else:
        start = end - timedelta(minutes=default_minutes)
    if start >= end:
        raise HTTPException(400, f"'from' ({start.isoformat()}) must be before 'to' ({end.isoformat()})")
    if end - start > timedelta(hours=max_hours):
        raise HTTPException(400, f"'from' and 'to' are {end - start} apart; at most {max_hours} h is allowed")
    for name, moment in (("from", start), ("to", end)):
        if not EARLIEST <= moment <= LATEST:
            raise HTTPException(400, _outside(name, moment.isoformat()))
    return start, end


def _json_value(value: Any) -> Any:
    """A result cell as JSON: instants as ISO 8601 UTC with 'Z', decimals as numbers, NaN as null."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(timespec="milliseconds") + "Z"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def table_rows(table: pa.Table) -> list[list[Any]]:
    columns = [[_json_value(value) for value in column.to_pylist()] for column in table.columns]
    return [list(row) for row in zip(*columns, strict=True)]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# A live range is answered anew at most every 1/1800 of its width, and never more often than its panel refreshes
# (nor than RTAP_DASHBOARD_CACHE_TTL_S): the last hour every 5 s, 6 h every 12 s, 24 h every 48 s. The floor: under
# chDB every panel query runs in the job's process, and at 10,000 events/s a 2-s floor (about 200 panel queries a
# minute for 20 pages) kept the job's freshness p99 at 1.56x (median of five rounds) of its own without viewers
# (bench/results/admission.md). The refresh: a panel refreshed less often than the floor is shared for its own
# interval, as pages at different phases would otherwise recompute it for answers no page asked to be fresher.
# The width: a chart is about 900 pixels wide, so in half a pixel's worth of time a wider range cannot visibly
# change, while a query over it costs more (24 h of active_users 130-210 ms against ~15 ms for an hour;
# bench/results/admission.md), and a script that asks the widest range back to back would otherwise cost a query
# every 5 s. Grafana's "auto" refresh follows the same idea.
CACHE_STEP_PER_WIDTH = 1800


def panel_key(panel: Panel, start: datetime, end: datetime) -> tuple[str, str, datetime, datetime]:
    """The result cache's key of a panel's answer over [start, end): the route stores it, CachedAnswers reads it."""
    return ("panel", panel.id, start, end)


def cache_step_s(floor_s: float, width: timedelta, refresh_s: float) -> float:
    """How long a result over a live range of ``width``, of a panel refreshed every ``refresh_s``, is shared, and
    the step its bounds are aligned to; 0 (``floor_s`` 0): no sharing."""
    if floor_s <= 0:
        return 0.0
    return max(floor_s, refresh_s, width.total_seconds() / CACHE_STEP_PER_WIDTH)


def _ceil(moment: datetime, step: timedelta) -> datetime:
    return _EPOCH + -((_EPOCH - moment) // step) * step


def align_live_range(
    start: datetime, end: datetime, *, now: datetime, step_s: float, max_hours: int
) -> tuple[datetime, datetime]:
    """[start, end) with both bounds rounded up to a multiple of ``step_s`` when the range ends within one step
    of ``now`` (the page's live ranges, each viewer's clock a little apart), so that viewers a moment apart ask
    for the same range and share one result. Up, not down: everything stored by now is in the range (the end
    is at most a step ahead). Any other range is answered as asked."""
    if step_s <= 0:
        return start, end
    step = timedelta(seconds=step_s)
    if end < now - step:
        return start, end
    aligned_start, aligned_end = _ceil(start, step), _ceil(end, step)
    if aligned_end - aligned_start > timedelta(hours=max_hours):
        aligned_start += step  # rounding both ends may widen the range by up to a step
    if aligned_start >= aligned_end:
        return start, end  # a range narrower than a step: nothing to share
    return aligned_start, aligned_end


def _dashboard_of(definition: Definition, panel: Panel) -> Dashboard:
    return next(d for d in definition.dashboards if panel in d.panels)


def panel_settings(limits: Mapping[str, float], timeout_s: float | None) -> dict[str, float]:
    """The settings a panel's query is sent with: only its time limit, which a slow panel must not exceed while
    it holds the reader (under chDB: the one read-only connection every panel shares). A read may only tighten the
    reader's own limit (rtap.warehouse.client), so a longer ``timeout_s`` means that limit."""
    if not timeout_s:
        return {}
    cap = limits.get("max_execution_time")
    return {"max_execution_time": min(timeout_s, cap) if cap else timeout_s}


def _bound(names: frozenset[str], start: datetime, end: datetime, setting_values: Mapping[str, Any]) -> dict[str, Any]:
    """The values of the parameters ``names`` a panel's query uses: the range and the settings'."""
    values = {"from": start, "to": end, **setting_values}
    return {name: values[name] for name in names}


def run_panel(
    client: WarehouseClient,
    panel: Panel,
    start: datetime,
    end: datetime,
    *,
    setting_values: Mapping[str, Any],
    max_rows: int = MAX_ROWS,
    timeout_s: float | None = None,
) -> tuple[pa.Table, bool]:
    """Run ``panel``'s query over [start, end); returns at most ``max_rows`` rows and whether it was cut.

    ``setting_values``: the values of the definition's setting parameters (see :func:`setting_parameters`).
    """
    # One row more than shown tells "exactly max_rows" apart from "cut".
    sql = f"SELECT * FROM (\n{panel.sql}\n) LIMIT {max_rows + 1}"
    bound = _bound(panel.parameters, start, end, setting_values)
    table = client.query_arrow(sql, parameters=bound, settings=panel_settings(client.limits, timeout_s))
    if table.num_rows > max_rows:
        return table.slice(0, max_rows), True
    return table, False


def empty_note(
    client: WarehouseClient,
    panel: Panel,
    start: datetime,
    end: datetime,
    *,
    setting_values: Mapping[str, Any],
    timeout_s: float | None = None,
) -> str | None:
    """For ``panel`` come back empty over [start, end): its ``empty_until`` note when what its rows need is not
    there yet (the count is 0), else None (the panel is empty for no reason it knows)."""
    if panel.empty_until is None:
        return None
    bound = _bound(panel.empty_until.parameters, start, end, setting_values)
    counted = client.query_arrow(
        panel.empty_until.sql, parameters=bound, settings=panel_settings(client.limits, timeout_s)
    )
    waiting = counted.num_rows == 0 or not counted.column(0)[0].as_py()
    return panel.empty_until.note if waiting else None


def create_app(settings: Settings, client: WarehouseClient, definition: Definition | None = None) -> FastAPI:
    """The dashboard application over ``client`` (read-only) and the packaged (or given) definition."""
    definition = definition or load_definition()
    panels = definition.panels_by_id()
    static = resources.files("rtap.dashboard") / "static"
    page = Template((static / "index.html").read_text(encoding="utf-8")).safe_substitute(
        version=__version__, title="rtap dashboards"
    )
    plotly_js = resources.files("plotly") / "package_data" / "plotly.min.js"

    app = FastAPI(
        title="rtap dashboard API",
        version=__version__,
        description="Live panels over the rtap ClickHouse tables. Each panel runs only its own, fixed SQL.",
    )
    options = settings.dashboard
    # A request waits for another's identical query at most as long as it would wait for its own slot and query.
    results: ResultCache[Any] = ResultCache(CACHE_ENTRIES, options.queue_timeout_s + options.query_timeout_s + 5.0)

    def panel_range(panel: Panel, range_from: str | None, range_to: str | None) -> tuple[datetime, datetime, float]:
        """The range a panel request is answered over (a live one aligned to its step) and that step."""
        now = datetime.now(UTC)
        start, end = resolve_range(
            range_from,
            range_to,
            default_minutes=_dashboard_of(definition, panel).default_range_minutes,
            max_hours=options.max_range_hours,
            now=now,
        )
        step_s = cache_step_s(options.cache_ttl_s, end - start, panel.refresh_seconds)
        start, end = align_live_range(start, end, now=now, step_s=step_s, max_hours=options.max_range_hours)
        return start, end, step_s

    def cached_panel(scope: Scope) -> bytes | None:
        """The shared answer to a panel request, when the cache holds one; None: the route answers (or refuses)."""
        path: str = scope["path"]
        panel = panels.get(path.removeprefix(PANEL_PATH)) if path.startswith(PANEL_PATH) else None
        if panel is None:
            return None
        params = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        values = dict(params)
        if len(values) != len(params):  # a repeated parameter: the route's own reading decides
            return None
        try:
            start, end, _ = panel_range(panel, values.get("from"), values.get("to"))
        except HTTPException:
            return None  # the route refuses it with its reason
        body: bytes | None = results.peek(panel_key(panel, start, end))
        if body is not None:
            metrics.DASHBOARD.panel_queries.labels("cached").inc()
            scope["route"] = panel_route  # the metrics' route label, as the router would set it
        return body

    app.add_middleware(CachedAnswers, answer=cached_panel)
    password = Password.from_settings(options)
    if password is not None:  # beyond loopback: a login, then a session for everything else (rtap.dashboard.auth)
        app.add_middleware(
            Gate,
            password=password,
            lifetime_s=options.session_hours * 3600,
            proxies=ClientAddress(options.trusted_proxies),
            plain_logins=is_loopback(options.host) or options.private_network,
        )
    # Outside the login, so that guessing passwords is limited too; inside the metrics, which count its 429s.
    app.add_middleware(
        ClientRateLimit,
        rate=options.client_requests_per_s,
        burst=options.client_burst,
        entries=options.limiter_entries,
        trusted_proxies=options.trusted_proxies,
    )
    app.add_middleware(metrics.RequestMetrics, metrics=metrics.DASHBOARD)
    admission = Admission(options.max_concurrent_queries, options.queue_timeout_s)
    app.state.admission = admission

    def shared(key: tuple[Any, ...], what: str, compute: Callable[[], Any], ttl_s: float = options.cache_ttl_s) -> Any:
        """``compute()`` under admission control, shared by every request for ``key`` for ``ttl_s``."""

        def admitted() -> Any:
            with admission.slot(what):
                return compute()

        try:
            value, ran = results.get(key, admitted, ttl_s)
        except BusyError as exc:
            metrics.DASHBOARD.panel_queries.labels("busy").inc()
            log.info("dashboard: %s", exc)
            raise HTTPException(503, f"{what}: the dashboard is busy; retry", headers=RETRY_AFTER) from exc
        metrics.DASHBOARD.panel_queries.labels("ran" if ran else "cached").inc()
        return value

    @app.get("/api/health", response_model=Health, responses={503: {"description": "warehouse unavailable or busy"}})
    def health() -> Health:
        """Whether the warehouse answers a trivial query."""

        def probe() -> Health:
            client.query_rows("SELECT 1")
            return Health(status="ok", database=client.database, version=__version__)

        try:
            result: Health = shared(("health",), "health", probe)
        except WarehouseError as exc:
            log.warning("dashboard health check: the warehouse failed: %s", exc)
            raise HTTPException(503, "the warehouse is unavailable (the dashboard's log says why)") from exc
        return result

    @app.get("/api/dashboards", response_model=DashboardsResponse)
    def dashboards() -> DashboardsResponse:
        """The dashboards definition, as the page renders it."""
        return DashboardsResponse(
            dashboards=definition.dashboards,
            currency=definition.currency,
            ranges=RANGE_CHOICES,
            max_range_hours=options.max_range_hours,
            collector_port=settings.collect.port,
        )

    def panel_answer(panel: Panel, start: datetime, end: datetime, step_s: float) -> bytes:
        """One panel's answer over [start, end) (:func:`panel_range`), as the JSON it is sent as; HTTPException
        when there is none."""

        def query() -> bytes:
            began = time.perf_counter()
            values = setting_parameters(settings)
            table, truncated = run_panel(
                client, panel, start, end, setting_values=values, timeout_s=options.query_timeout_s
            )
            note = None
            if table.num_rows == 0:
                note = empty_note(client, panel, start, end, setting_values=values, timeout_s=options.query_timeout_s)
            return (
                PanelResult(
                    panel=panel.id,
                    chart=panel.chart.value,
                    columns=table.column_names,
                    types=[str(field.type) for field in table.schema],
                    rows=table_rows(table),
                    row_count=table.num_rows,
                    truncated=truncated,
                    range_from=start,
                    range_to=end,
                    elapsed_ms=round((time.perf_counter() - began) * 1000, 1),
                    updated_at=datetime.now(UTC),
                    empty_note=note,
                )
                .model_dump_json()
                .encode()
            )

        try:
            # Kept as the JSON it is sent as: a shared answer costs its viewers no serialisation each.
            body: bytes = shared(panel_key(panel, start, end), f"panel {panel.id!r}", query, step_s)
        except WarehouseError as exc:
            log.warning("dashboard panel %s failed: %s", panel.id, exc)
            if isinstance(exc, RetryableWarehouseError):
                raise HTTPException(503, f"panel {panel.id!r}: the warehouse is unavailable or busy; retry") from exc
            raise HTTPException(502, f"panel {panel.id!r} failed (the dashboard's log says why)") from exc
        return body

    @app.get(
        PANEL_PATH + "{panel_id}",
        response_model=PanelResult,
        responses={
            400: {"description": "bad time range"},
            404: {"description": "unknown panel"},
            503: {"description": "warehouse unavailable, or every query slot busy (Retry-After)"},
        },
    )
    def panel_data(
        panel_id: str,
        range_from: Annotated[str | None, Query(alias="from", description="ISO 8601 start (inclusive)")] = None,
        range_to: Annotated[str | None, Query(alias="to", description="ISO 8601 end (exclusive)")] = None,
    ) -> Response:
        """Run one panel's query over [from, to) (default: its dashboard's range ending now).

        A range ending now is aligned to the result cache's step (longer for a wider range): every viewer within
        a step shares one query.
        """
        panel = panels.get(panel_id)
        if panel is None:
            raise HTTPException(404, f"no panel {echo(panel_id)}; see /api/dashboards for the panel ids")
        body = panel_answer(panel, *panel_range(panel, range_from, range_to))
        return Response(body, media_type="application/json")

    @app.get(
        PANELS_PATH,
        response_model=PanelsResult,
        responses={400: {"description": "bad time range or panel list"}, 404: {"description": "unknown panel"}},
    )
    def panels_data(
        ids: Annotated[str, Query(description="comma-separated panel ids, each once", max_length=2000)],
        range_from: Annotated[str | None, Query(alias="from", description="ISO 8601 start (inclusive)")] = None,
        range_to: Annotated[str | None, Query(alias="to", description="ISO 8601 end (exclusive)")] = None,
    ) -> Response:
        """Several panels' answers over one range, in one request: what a page asks at each refresh.

        Each panel is answered as ``/api/panels/{id}`` answers it (the same shared results), or with its own
        ``{"status", "detail"}`` when that one has no answer (503 busy: ask again after ``retry_after_s``), so one
        busy panel does not fail the others. Why one request: a viewer's requests, not its queries, were what the
        page cost the job once results were shared (bench/results/admission.md).
        """
        asked: dict[str, tuple[Panel, tuple[datetime, datetime, float]]] = {}
        for panel_id in ids.split(","):
            panel = panels.get(panel_id)
            if panel is None:
                raise HTTPException(404, f"no panel {echo(panel_id)}; see /api/dashboards for the panel ids")
            if panel_id in asked:
                raise HTTPException(400, "'ids' names a panel twice")
            # A bad range is bad for every panel: refused whole, before any query.
            asked[panel_id] = panel, panel_range(panel, range_from, range_to)
        parts = []
        for panel, span in asked.values():
            try:
                body = panel_answer(panel, *span)
            except HTTPException as exc:
                retry = (exc.headers or {}).get("Retry-After") or ("1" if exc.status_code == 503 else None)
                refusal = {"status": exc.status_code, "detail": exc.detail, "retry_after_s": retry and int(retry)}
                body = orjson.dumps({"error": refusal})
            parts.append(orjson.dumps(panel.id) + b":" + body)
        return Response(b'{"panels":{' + b",".join(parts) + b"}}", media_type="application/json")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly() -> FileResponse:
        # Served from the installed plotly package: the page works offline and matches that version.
        return FileResponse(str(plotly_js), media_type="text/javascript", headers=_CACHE_A_DAY)

    @app.get("/static/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        if name not in STATIC_FILES:
            raise HTTPException(404, f"no static file {name!r}")
        return Response((static / name).read_bytes(), media_type=STATIC_FILES[name])

    panel_route = next(r for r in app.routes if getattr(r, "path", None) == PANEL_PATH + "{panel_id}")
    return app


_CACHE_A_DAY = {"Cache-Control": "public, max-age=86400"}
