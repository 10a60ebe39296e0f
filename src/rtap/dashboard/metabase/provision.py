"""Bring a Metabase (v0.56, which bundles the ClickHouse driver) to the state of ``dashboards.yaml``.

Idempotent by name: the ClickHouse database, the ``rtap`` collection, one native-SQL card per panel and
one dashboard per definition dashboard are looked up first and created only when missing, updated only
when they differ. A second run over an unchanged definition therefore only reads (and logs in).

API used (Metabase REST, not versioned; checked against the v0.56 sources):
``GET /api/session/properties`` (setup token), ``POST /api/setup`` (first admin) or ``POST /api/session``,
``GET|POST|PUT /api/database``, ``GET|POST /api/collection``, ``GET /api/collection/:id/items``,
``GET|POST|PUT /api/card``, ``GET|POST|PUT /api/dashboard`` (``dashcards`` with negative ids for new ones).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx

from rtap.dashboard.definition import PARAMETER, ChartType, Dashboard, Definition, Panel, setting_parameters
from rtap.errors import ConfigError, MetabaseError
from rtap.http_json import request_json
from rtap.settings import Settings
from rtap.warehouse.sql import quote_string

COLLECTION_NAME = "rtap"
# Metabase lays dashboards out on a 24-column grid; the definition uses 12 columns.
GRID_COLUMNS = 24
_ROW_UNITS = 4
DISPLAY = {
    ChartType.TIMESERIES: "line",
    ChartType.BAR: "row",
    ChartType.TABLE: "table",
    ChartType.NUMBER: "object",
    ChartType.FUNNEL: "funnel",
}


@dataclass
class ProvisionReport:
    """What a run did, per object: ``created``, ``updated`` or ``unchanged``; and the dashboard URLs."""

    actions: list[tuple[str, str, str]] = field(default_factory=list)
    dashboard_urls: dict[str, str] = field(default_factory=dict)

    def record(self, kind: str, name: str, action: str) -> None:
        self.actions.append((kind, name, action))

    def count(self, action: str) -> int:
        return sum(1 for _, _, done in self.actions if done == action)


def metabase_sql(panel: Panel, settings: Settings, range_minutes: int) -> str:
    """The panel's SQL for Metabase: ``{db}`` filled in, the time range fixed relative to now(), settings inlined."""
    values = {
        "from": f"(now() - INTERVAL {range_minutes} MINUTE)",
        "to": "(now())",
        **{
            name: quote_string(value) if isinstance(value, str) else str(value)
            for name, value in setting_parameters(settings).items()
        },
    }
    return PARAMETER.sub(lambda match: values[match["name"]], panel.sql.replace("{db}", settings.warehouse.database))


def dashcard_layout(dashboard: Dashboard, card_ids: dict[str, int]) -> list[dict[str, int]]:
    """Cards placed left to right, wrapping like the web page's CSS grid does."""
    placed: list[dict[str, int]] = []
    col = row = row_height = 0
    for panel in dashboard.panels:
        size_x, size_y = panel.width * GRID_COLUMNS // 12, panel.height * _ROW_UNITS
        if col + size_x > GRID_COLUMNS:
            col, row, row_height = 0, row + row_height, 0
        placed.append({"card_id": card_ids[panel.id], "row": row, "col": col, "size_x": size_x, "size_y": size_y})
        col += size_x
        row_height = max(row_height, size_y)
    return placed


class _Api:
    """Metabase's JSON API: every unexpected answer is a MetabaseError (rtap.http_json)."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any) -> Any:
        return request_json(self.http, method, path, params=params or None, body=body, error=MetabaseError)

    def listing(self, path: str, **params: Any) -> list[dict[str, Any]]:
        # Some list endpoints answer a bare list, others {"data": [...], "total": n}.
        found = self.call("GET", path, **params)
        items = found.get("data", []) if isinstance(found, dict) else found
        if not isinstance(items, list):
            raise MetabaseError(f"Metabase GET {path}: expected a list, got {type(items).__name__}")
        return items


class Provisioner:
    def __init__(self, settings: Settings, definition: Definition, api: _Api, report: ProvisionReport) -> None:
        self.settings = settings
        self.definition = definition
        self.api = api
        self.report = report

    def login(self) -> None:
        mb = self.settings.metabase
        password = mb.admin_password.get_secret_value()
        if not password:
            raise ConfigError("set RTAP_METABASE_ADMIN_PASSWORD: Metabase needs an admin password")
        properties = self.api.call("GET", "/api/session/properties")
        token = properties.get("setup-token")
        if token and not properties.get("has-user-setup"):
            body = {
                "token": token,
                "user": {"email": mb.admin_email, "password": password, "first_name": "rtap", "last_name": "admin"},
                "prefs": {"site_name": mb.site_name, "site_locale": "en", "allow_tracking": False},
            }
            session = self.api.call("POST", "/api/setup", body)
            self.report.record("admin", mb.admin_email, "created")
        else:
            session = self.api.call("POST", "/api/session", {"username": mb.admin_email, "password": password})
        if not isinstance(session, dict) or "id" not in session:
            raise MetabaseError("Metabase did not return a session id")
        self.api.http.headers["X-Metabase-Session"] = str(session["id"])

    def database(self) -> int:
        wh, mb = self.settings.warehouse, self.settings.metabase
        # Metabase reads through the read-only account, like every other dashboard.
        details = {
            "host": mb.clickhouse_host,
            "port": mb.clickhouse_port,
            "user": wh.readonly_user,
            "dbname": wh.database,
            "ssl": wh.secure,
        }
        name = f"rtap ClickHouse ({wh.database})"
        wanted = {"name": name, "engine": "clickhouse", "details": details}
        existing = next((d for d in self.api.listing("/api/database") if d.get("name") == name), None)
        with_secret = {**wanted, "details": {**details, "password": wh.readonly_password.get_secret_value()}}
        if existing is None:
            created = self.api.call("POST", "/api/database", with_secret)
            self.report.record("database", name, "created")
            return int(created["id"])
        # The password is never echoed back, so only the visible details decide whether to update.
        current = existing.get("details") or {}
        if existing.get("engine") != "clickhouse" or any(current.get(k) != v for k, v in details.items()):
            self.api.call("PUT", f"/api/database/{existing['id']}", with_secret)
            self.report.record("database", name, "updated")
        else:
            self.report.record("database", name, "unchanged")
        return int(existing["id"])

    def collection(self) -> int:
        for found in self.api.listing("/api/collection"):
            top_level = found.get("location", "/") == "/" and found.get("personal_owner_id") is None
            if found.get("name") == COLLECTION_NAME and top_level and not found.get("archived"):
                self.report.record("collection", COLLECTION_NAME, "unchanged")
                return int(found["id"])
        body = {"name": COLLECTION_NAME, "description": "Generated by `rtap metabase provision`.", "parent_id": None}
        created = self.api.call("POST", "/api/collection", body)
        self.report.record("collection", COLLECTION_NAME, "created")
        return int(created["id"])

    def _items(self, collection_id: int, model: str) -> dict[str, int]:
        items = self.api.listing(f"/api/collection/{collection_id}/items", models=model)
        return {item["name"]: int(item["id"]) for item in items if item.get("model") == model}

    def cards(self, database_id: int, collection_id: int) -> dict[str, int]:
        existing = self._items(collection_id, "card")
        ids: dict[str, int] = {}
        for dashboard in self.definition.dashboards:
            for panel in dashboard.panels:
                minutes = dashboard.default_range_minutes
                query = metabase_sql(panel, self.settings, minutes)
                wanted: dict[str, Any] = {
                    "name": panel.title,
                    "type": "question",
                    "display": DISPLAY[panel.chart],
                    "description": f"rtap panel {panel.id} ({dashboard.title}); last {minutes} min",
                    "collection_id": collection_id,
                    "visualization_settings": {},
                    "dataset_query": {
                        "type": "native",
                        "database": database_id,
                        "native": {"query": query, "template-tags": {}},
                    },
                }
                ids[panel.id] = self._upsert_card(wanted, existing.get(panel.title))
        return ids

    def _upsert_card(self, wanted: dict[str, Any], card_id: int | None) -> int:
        if card_id is None:
            created = self.api.call("POST", "/api/card", wanted)
            self.report.record("card", wanted["name"], "created")
            return int(created["id"])
        current = self.api.call("GET", f"/api/card/{card_id}")
        query = current.get("dataset_query") or {}
        same = (
            (query.get("native") or {}).get("query") == wanted["dataset_query"]["native"]["query"]
            and query.get("database") == wanted["dataset_query"]["database"]
            and current.get("display") == wanted["display"]
            and current.get("description") == wanted["description"]
        )
        if not same:
            self.api.call("PUT", f"/api/card/{card_id}", wanted)
        self.report.record("card", wanted["name"], "unchanged" if same else "updated")
        return card_id

    def dashboards(self, collection_id: int, card_ids: dict[str, int]) -> None:
        existing = self._items(collection_id, "dashboard")
        base = str(self.api.http.base_url).rstrip("/")
        for dashboard in self.definition.dashboards:
            dashboard_id = existing.get(dashboard.title)
            if dashboard_id is None:
                body = {"name": dashboard.title, "description": dashboard.description, "collection_id": collection_id}
                dashboard_id = int(self.api.call("POST", "/api/dashboard", body)["id"])
                self.report.record("dashboard", dashboard.title, "created")
                current_cards: list[dict[str, Any]] = []
            else:
                current_cards = self.api.call("GET", f"/api/dashboard/{dashboard_id}").get("dashcards") or []
            layout = dashcard_layout(dashboard, card_ids)
            if _layout_key(current_cards) != _layout_key(layout):
                self.api.call("PUT", f"/api/dashboard/{dashboard_id}", {"dashcards": _dashcards(layout, current_cards)})
                if dashboard.title in existing:
                    self.report.record("dashboard", dashboard.title, "updated")
            elif dashboard.title in existing:
                self.report.record("dashboard", dashboard.title, "unchanged")
            self.report.dashboard_urls[dashboard.title] = f"{base}/dashboard/{dashboard_id}#refresh=10"


def _layout_key(cards: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted((c.get("card_id"), c.get("row"), c.get("col"), c.get("size_x"), c.get("size_y")) for c in cards)


def _dashcards(layout: list[dict[str, int]], current: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The full dashcards list: existing dashcards keep their id (moved in place), new ones get -1, -2, ..."""
    reusable = {c["card_id"]: c["id"] for c in current if c.get("card_id") is not None}
    cards: list[dict[str, Any]] = []
    for index, placed in enumerate(layout, start=1):
        cards.append({"id": reusable.pop(placed["card_id"], -index), **placed, "parameter_mappings": []})
    return cards


def provision(
    settings: Settings, definition: Definition, url: str, *, transport: httpx.BaseTransport | None = None
) -> ProvisionReport:
    """Provision the Metabase at ``url``; ``transport`` lets tests replay recorded API answers."""
    if not re.match(r"^https?://", url):
        raise ConfigError(f"--url must start with http:// or https://, got {url!r}")
    report = ProvisionReport()
    with httpx.Client(base_url=url, timeout=30.0, transport=transport) as http:
        provisioner = Provisioner(settings, definition, _Api(http), report)
        provisioner.login()
        database_id = provisioner.database()
        collection_id = provisioner.collection()
        card_ids = provisioner.cards(database_id, collection_id)
        provisioner.dashboards(collection_id, card_ids)
    return report
