"""A stateful stand-in for the Metabase v0.56 REST API, served through ``httpx.MockTransport``.

It answers with the recorded bodies in ``metabase_responses/`` (filled with the ids and names of what
was created) and asserts the shape of every request rtap sends, so a wrong field fails here rather than
against a real Metabase. It keeps the objects it was asked to create, which is what lets a test prove
that a second provisioning run creates nothing.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from pathlib import Path
from typing import Any

import httpx

RESPONSES = Path(__file__).parent / "metabase_responses"
SESSION_HEADER = "X-Metabase-Session"


def recorded(name: str) -> Any:
    return json.loads((RESPONSES / f"{name}.json").read_text(encoding="utf-8"))


class FakeMetabase:
    def __init__(self, *, password: str) -> None:
        self.password = password
        self.properties = recorded("session_properties_fresh")
        self.session = recorded("session")["id"]
        self.databases: dict[int, dict[str, Any]] = {d["id"]: d for d in recorded("database_list")["data"]}
        self.collections: list[dict[str, Any]] = recorded("collection_list")
        self.cards: dict[int, dict[str, Any]] = {}
        self.dashboards: dict[int, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self._ids = itertools.count(2)
        self._dashcard_ids = itertools.count(100)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    # -- request handling ---------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        method, path = request.method, request.url.path
        self.calls.append((method, path))
        body: Any = json.loads(request.content) if request.content else None
        if path == "/api/session/properties" and method == "GET":
            return httpx.Response(200, json=self.properties)
        if path == "/api/setup" and method == "POST":
            return self._setup(body)
        if path == "/api/session" and method == "POST":
            if body != {"username": "admin@rtap.local", "password": self.password}:
                return httpx.Response(401, json={"errors": {"password": "did not match stored password"}})
            return httpx.Response(200, json={"id": self.session})
        assert request.headers.get(SESSION_HEADER) == self.session, f"{method} {path} without a session"
        for pattern, handler in self._routes():
            match = re.fullmatch(pattern, f"{method} {path}")
            if match:
                return handler(body, request, *match.groups())
        raise AssertionError(f"unexpected request {method} {path}")

    def _routes(self) -> list[tuple[str, Any]]:
        return [
            (r"GET /api/database", lambda *_: httpx.Response(200, json=self._database_list())),
            (r"POST /api/database", self._create_database),
            (r"PUT /api/database/(\d+)", self._update_database),
            (r"GET /api/collection", lambda *_: httpx.Response(200, json=self.collections)),
            (r"POST /api/collection", self._create_collection),
            (r"GET /api/collection/(\d+)/items", self._items),
            (r"POST /api/card", self._create_card),
            (r"GET /api/card/(\d+)", lambda _b, _r, card_id: httpx.Response(200, json=self.cards[int(card_id)])),
            (r"PUT /api/card/(\d+)", self._update_card),
            (r"POST /api/dashboard", self._create_dashboard),
            (r"GET /api/dashboard/(\d+)", lambda _b, _r, i: httpx.Response(200, json=self.dashboards[int(i)])),
            (r"PUT /api/dashboard/(\d+)", self._update_dashboard),
        ]

    def _setup(self, body: dict[str, Any]) -> httpx.Response:
        assert not self.properties["has-user-setup"], "setup called twice"
        assert body["token"] == self.properties["setup-token"]
        assert set(body["user"]) >= {"email", "password"}
        assert body["user"]["password"] == self.password
        assert body["prefs"]["site_name"]
        self.properties = recorded("session_properties_done")
        return httpx.Response(200, json={"id": self.session})

    def _database_list(self) -> dict[str, Any]:
        return {"data": list(self.databases.values()), "total": len(self.databases)}

    def _check_database(self, body: dict[str, Any]) -> None:
        assert body["engine"] == "clickhouse"
        assert body["name"]
        assert set(body["details"]) >= {"host", "port", "user", "password", "dbname", "ssl"}

    def _create_database(self, body: dict[str, Any], _request: httpx.Request) -> httpx.Response:
        self._check_database(body)
        database = {**recorded("database"), "id": next(self._ids), "name": body["name"]}
        database["details"] = {**body["details"], "password": "**MetabasePass**"}  # never echoed back
        self.databases[database["id"]] = database
        return httpx.Response(200, json=database)

    def _update_database(self, body: dict[str, Any], _request: httpx.Request, db_id: str) -> httpx.Response:
        self._check_database(body)
        database = self.databases[int(db_id)]
        database.update(name=body["name"], details={**body["details"], "password": "**MetabasePass**"})
        return httpx.Response(200, json=database)

    def _create_collection(self, body: dict[str, Any], _request: httpx.Request) -> httpx.Response:
        assert body["name"]
        assert body.get("parent_id") is None
        collection = {**recorded("collection"), "id": next(self._ids), "name": body["name"], "slug": body["name"]}
        self.collections.append(collection)
        return httpx.Response(200, json=collection)

    def _items(self, _body: None, request: httpx.Request, collection_id: str) -> httpx.Response:
        models = request.url.params.get_list("models")
        found = [
            {"id": obj["id"], "name": obj["name"], "model": model, "description": obj.get("description")}
            for model, store in (("card", self.cards), ("dashboard", self.dashboards))
            if model in models
            for obj in store.values()
            if obj["collection_id"] == int(collection_id)
        ]
        return httpx.Response(200, json={**recorded("collection_items"), "data": found, "total": len(found)})

    def _check_card(self, body: dict[str, Any]) -> None:
        query = body["dataset_query"]
        assert query["type"] == "native"
        assert query["database"] in self.databases
        sql = query["native"]["query"]
        for placeholder in ("{db}", "{from", "{to", "{{"):
            assert placeholder not in sql, sql
        assert body["display"] in {"line", "row", "table", "object", "funnel"}
        assert any(c["id"] == body["collection_id"] for c in self.collections)

    def _create_card(self, body: dict[str, Any], _request: httpx.Request) -> httpx.Response:
        self._check_card(body)
        card = {**recorded("card"), **copy.deepcopy(body), "id": next(self._ids)}
        card["database_id"] = body["dataset_query"]["database"]
        self.cards[card["id"]] = card
        return httpx.Response(200, json=card)

    def _update_card(self, body: dict[str, Any], _request: httpx.Request, card_id: str) -> httpx.Response:
        self._check_card(body)
        self.cards[int(card_id)].update(copy.deepcopy(body))
        return httpx.Response(200, json=self.cards[int(card_id)])

    def _create_dashboard(self, body: dict[str, Any], _request: httpx.Request) -> httpx.Response:
        assert body["name"]
        assert any(c["id"] == body["collection_id"] for c in self.collections)
        dashboard = {**recorded("dashboard"), **body, "id": next(self._ids), "dashcards": []}
        self.dashboards[dashboard["id"]] = dashboard
        return httpx.Response(200, json=dashboard)

    def _update_dashboard(self, body: dict[str, Any], _request: httpx.Request, dash_id: str) -> httpx.Response:
        dashboard = self.dashboards[int(dash_id)]
        existing = {dc["id"] for dc in dashboard["dashcards"]}
        dashcards = []
        for dc in body["dashcards"]:
            assert set(dc) >= {"id", "card_id", "row", "col", "size_x", "size_y"}
            assert dc["size_x"] > 0
            assert dc["size_y"] > 0
            assert dc["row"] >= 0
            assert 0 <= dc["col"] < 24
            assert dc["col"] + dc["size_x"] <= 24, dc
            assert dc["card_id"] in self.cards
            assert dc["id"] < 0 or dc["id"] in existing, "a positive id must be an existing dashcard"
            dashcard_id = next(self._dashcard_ids) if dc["id"] < 0 else dc["id"]
            dashcards.append({**recorded("dashcard"), **dc, "id": dashcard_id, "dashboard_id": int(dash_id)})
        dashboard["dashcards"] = dashcards
        return httpx.Response(200, json=dashboard)
