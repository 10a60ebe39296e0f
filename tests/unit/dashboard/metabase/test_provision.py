"""Metabase provisioning against a replayed v0.56 API: first run builds everything, second run only reads."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from rtap.dashboard.definition import Definition, load_definition
from rtap.dashboard.metabase import metabase_sql, provision
from rtap.errors import ConfigError, MetabaseError
from rtap.settings import KafkaSettings, MetabaseSettings, Settings, StreamSettings, WarehouseSettings
from tests.support.metabase import FakeMetabase

URL = "http://metabase.test:3000"
PASSWORD = "s3cret-Passw0rd!"


@pytest.fixture
def settings() -> Settings:
    return Settings(
        metabase=MetabaseSettings(admin_password=SecretStr(PASSWORD), clickhouse_host="clickhouse"),
        warehouse=WarehouseSettings(database="rtap", readonly_password=SecretStr("reader")),
    )


@pytest.fixture
def definition() -> Definition:
    return load_definition()


@pytest.fixture
def metabase() -> FakeMetabase:
    return FakeMetabase(password=PASSWORD)


def _panel_count(definition: Definition) -> int:
    return sum(len(d.panels) for d in definition.dashboards)


def test_first_run_sets_up_metabase_and_builds_every_dashboard(
    settings: Settings, definition: Definition, metabase: FakeMetabase
) -> None:
    report = provision(settings, definition, URL, transport=metabase.transport())

    assert metabase.calls[:2] == [("GET", "/api/session/properties"), ("POST", "/api/setup")]
    [database] = [d for d in metabase.databases.values() if d["engine"] == "clickhouse"]
    assert database["details"]["host"] == "clickhouse"
    assert database["details"]["dbname"] == "rtap"
    assert database["details"]["user"] == "rtap_reader"
    assert len(metabase.cards) == _panel_count(definition)
    assert {card["name"] for card in metabase.cards.values()} == {
        p.title for d in definition.dashboards for p in d.panels
    }
    assert sorted(d["name"] for d in metabase.dashboards.values()) == ["Clickstream live", "Pipeline health"]
    for dashboard in definition.dashboards:
        [stored] = [d for d in metabase.dashboards.values() if d["name"] == dashboard.title]
        assert len(stored["dashcards"]) == len(dashboard.panels)
        cells = {(dc["row"], dc["col"]) for dc in stored["dashcards"]}
        assert len(cells) == len(dashboard.panels), "two cards share a position"
        assert report.dashboard_urls[dashboard.title] == f"{URL}/dashboard/{stored['id']}#refresh=10"
    assert report.count("created") == 1 + 1 + 1 + _panel_count(definition) + 2  # admin, db, collection
    assert report.count("updated") == 0


def test_second_run_creates_and_changes_nothing(
    settings: Settings, definition: Definition, metabase: FakeMetabase
) -> None:
    first = provision(settings, definition, URL, transport=metabase.transport())
    metabase.calls.clear()

    second = provision(settings, definition, URL, transport=metabase.transport())

    writes = [call for call in metabase.calls if call[0] != "GET"]
    assert writes == [("POST", "/api/session")], "only the login may write on a second run"
    assert second.count("created") == 0
    assert second.count("updated") == 0
    assert second.count("unchanged") == 1 + 1 + _panel_count(definition) + 2
    assert second.dashboard_urls == first.dashboard_urls


def test_a_changed_panel_updates_its_card_in_place(
    settings: Settings, definition: Definition, metabase: FakeMetabase
) -> None:
    provision(settings, definition, URL, transport=metabase.transport())
    cards_before = set(metabase.cards)
    dashcards_before = {dc["id"] for d in metabase.dashboards.values() for dc in d["dashcards"]}
    data = definition.model_dump(mode="json")
    data["dashboards"][1]["panels"][0]["sql"] += "\nLIMIT 1"
    data["dashboards"][1]["panels"][0]["width"] = 6
    changed = Definition.model_validate(data)
    metabase.calls.clear()

    report = provision(settings, changed, URL, transport=metabase.transport())

    assert set(metabase.cards) == cards_before
    assert [c for c in metabase.calls if c[0] == "POST"] == [("POST", "/api/session")]
    assert report.actions.count(("card", "Freshness", "updated")) == 1
    assert ("dashboard", "Pipeline health", "updated") in report.actions
    dashcards_after = {dc["id"] for d in metabase.dashboards.values() for dc in d["dashcards"]}
    assert dashcards_after == dashcards_before, "existing dashcards must be moved, not recreated"


def test_a_moved_clickhouse_host_updates_the_database(
    settings: Settings, definition: Definition, metabase: FakeMetabase
) -> None:
    provision(settings, definition, URL, transport=metabase.transport())
    settings.metabase.clickhouse_host = "clickhouse.internal"
    report = provision(settings, definition, URL, transport=metabase.transport())
    assert ("database", "rtap ClickHouse (rtap)", "updated") in report.actions
    [database] = [d for d in metabase.databases.values() if d["engine"] == "clickhouse"]
    assert database["details"]["host"] == "clickhouse.internal"


def test_metabase_sql_fixes_the_range_relative_to_now(definition: Definition) -> None:
    panel = definition.panels_by_id()["events_by_type"]
    sql = metabase_sql(panel, Settings(warehouse=WarehouseSettings(database="analytics")), 60)
    assert "analytics.events_1m FINAL" in sql
    assert "toStartOfMinute((now() - INTERVAL 60 MINUTE))" in sql
    assert "window_start < (now())" in sql
    assert "{" not in sql


def test_metabase_sql_inlines_the_session_gap(definition: Definition) -> None:
    panel = definition.panels_by_id()["abandoned_carts"]
    sql = metabase_sql(panel, Settings(stream=StreamSettings(session_gap_s=900)), 60)
    assert "toIntervalSecond(900)" in sql
    assert "{" not in sql


def test_metabase_sql_inlines_the_browser_topic_as_a_string(definition: Definition) -> None:
    panel = definition.panels_by_id()["browser_events"]
    sql = metabase_sql(panel, Settings(kafka=KafkaSettings(browser_topic="shop.web")), 60)
    assert "kafka_topic = 'shop.web'" in sql
    assert "{" not in sql


def test_a_wrong_password_is_one_clear_error(definition: Definition, metabase: FakeMetabase) -> None:
    provision(
        Settings(metabase=MetabaseSettings(admin_password=SecretStr(PASSWORD))),
        definition,
        URL,
        transport=metabase.transport(),
    )
    wrong = Settings(metabase=MetabaseSettings(admin_password=SecretStr("wrong")))
    with pytest.raises(MetabaseError, match=r"POST http://\S+/api/session: HTTP 401"):
        provision(wrong, definition, URL, transport=metabase.transport())


def test_missing_password_and_bad_url_are_config_errors(definition: Definition, metabase: FakeMetabase) -> None:
    with pytest.raises(ConfigError, match="RTAP_METABASE_ADMIN_PASSWORD"):
        provision(
            Settings(metabase=MetabaseSettings(admin_password=SecretStr(""))),
            definition,
            URL,
            transport=metabase.transport(),
        )
    with pytest.raises(ConfigError, match="--url must start with http"):
        provision(Settings(), definition, "metabase:3000")
