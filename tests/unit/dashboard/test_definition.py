"""The dashboards definition: the packaged file is valid, and each kind of mistake is named precisely."""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from rtap.dashboard.definition import ChartType, load_definition, parse_definition
from rtap.errors import ConfigError
from rtap.ops.dead_letters import REASON_CLASS


@pytest.fixture(scope="module")
def packaged() -> dict[str, Any]:
    text = (resources.files("rtap.dashboard") / "dashboards.yaml").read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def test_packaged_definition_has_both_dashboards_and_every_chart_type() -> None:
    definition = load_definition()
    assert [d.title for d in definition.dashboards] == ["Clickstream live", "Pipeline health"]
    charts = {panel.chart for d in definition.dashboards for panel in d.panels}
    assert charts == set(ChartType)
    live = [p for p in definition.panels_by_id().values() if p.refresh_seconds <= 2]
    assert {"page_views_top_pages", "events_by_type", "freshness", "kafka_lag"} <= {p.id for p in live}


def test_pipeline_health_reads_the_pipeline_tables() -> None:
    pipeline = next(d for d in load_definition().dashboards if d.id == "pipeline")
    sql = " ".join(panel.sql for panel in pipeline.panels)
    for table in ("{db}.pipeline_batches FINAL", "{db}.dead_letters FINAL", "{db}.late_events FINAL"):
        assert table in sql


def test_dead_letter_reasons_are_counted_by_the_class_rtap_dlq_reasons_uses() -> None:
    reasons = load_definition().panels_by_id()["dead_letter_reasons"]
    assert f"substringUTF8({REASON_CLASS}, 1, 80) AS reason" in reasons.sql


def test_panels_declare_the_time_parameters_they_use() -> None:
    panels = load_definition().panels_by_id()
    assert panels["events_by_type"].parameters == {"from", "to"}


def _with(data: dict[str, Any], path: list[str | int], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(data)
    target: Any = changed
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return changed


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (
            ["dashboards", 0, "panels", 3, "chart"],
            "pie",
            "dashboards[0].panels[3].chart: must be one of timeseries, bar, table, number, funnel",
        ),
        (["dashboards", 1, "panels", 0, "refresh_seconds"], 0, "dashboards[1].panels[0].refresh_seconds:"),
        (["dashboards", 0, "panels", 2, "width"], 13, "dashboards[0].panels[2].width:"),
        (["dashboards", 0, "panels", 1, "title"], _DELETE, "dashboards[0].panels[1].title: Field required"),
        (["dashboards", 0, "panels", 0, "id"], "Bad Id", "dashboards[0].panels[0].id:"),
        (["dashboards", 0, "panels", 0, "colour"], "red", "dashboards[0].panels[0].colour: Extra inputs"),
        (
            ["dashboards", 0, "panels", 0, "sql"],
            "DROP TABLE {db}.events",
            "dashboards[0].panels[0].sql: must be a single SELECT",
        ),
        (
            ["dashboards", 0, "panels", 0, "sql"],
            "SELECT 1 FROM {db}.events; SELECT 2",
            "dashboards[0].panels[0].sql: must be a single statement",
        ),
        (["dashboards", 0, "panels", 0, "sql"], "SELECT 1", "must read the rtap tables through {db}"),
        (
            ["dashboards", 0, "panels", 0, "sql"],
            "SELECT * FROM {db}.events WHERE user_id = {user:String}",
            "unknown parameter {user}",
        ),
        (
            ["dashboards", 0, "panels", 0, "sql"],
            "SELECT * FROM {db}.events WHERE event_time > {from:String}",
            "parameter {from} must be a DateTime64",
        ),
        (
            ["dashboards", 0, "panels", 0, "empty_until"],
            {"note": "nothing yet", "sql": "SELECT count() FROM {db}.events; DROP TABLE {db}.events"},
            "dashboards[0].panels[0].empty_until.sql: must be a single statement",
        ),
        (
            ["dashboards", 0, "panels", 0, "empty_until"],
            {"note": "nothing yet", "sql": "SELECT count() FROM {db}.sessions WHERE user_id = {user:String}"},
            "dashboards[0].panels[0].empty_until.sql: unknown parameter {user}",
        ),
        (["dashboards", 0, "panels", 0, "empty_until"], {"sql": "SELECT 1 FROM {db}.events"}, "empty_until.note"),
        (["dashboards", 1, "panels", 1, "id"], "freshness", "duplicate panel id 'freshness'"),
        (["dashboards", 0, "panels"], [], "dashboards[0].panels:"),
        (["dashboards"], "nope", "dashboards:"),
    ],
)
def test_each_bad_field_is_named(packaged: dict[str, Any], path: list[str | int], value: Any, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_definition(_with(packaged, path, value), "dashboards.yaml")
    assert expected in str(caught.value)
    assert str(caught.value).startswith("dashboards.yaml: ")
    assert "\n" not in str(caught.value)


def test_duplicate_titles_are_refused_because_metabase_cards_are_keyed_by_name(packaged: dict[str, Any]) -> None:
    title = packaged["dashboards"][0]["panels"][0]["title"]
    with pytest.raises(ConfigError, match="duplicate panel title"):
        parse_definition(_with(packaged, ["dashboards", 1, "panels", 0, "title"], title))


def test_a_file_on_disk_is_loaded_and_broken_yaml_is_one_line(tmp_path: Path, packaged: dict[str, Any]) -> None:
    good = tmp_path / "dash.yaml"
    good.write_text(yaml.safe_dump(packaged), encoding="utf-8")
    assert load_definition(good) == load_definition()
    broken = tmp_path / "broken.yaml"
    broken.write_text("dashboards: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_definition(broken)
    with pytest.raises(ConfigError, match="cannot read dashboards definition"):
        load_definition(tmp_path / "missing.yaml")


def test_buckets_belong_to_time_series_and_formats_are_known() -> None:
    definition = load_definition()
    assert definition.currency == "USD"
    assert {p.id for d in definition.dashboards for p in d.panels if p.bucket_seconds} >= {
        "events_by_type",
        "events_per_second",
    }
    raw = yaml.safe_load((Path(__file__).resolve().parents[3] / "src/rtap/dashboard/dashboards.yaml").read_text())
    panel = raw["dashboards"][0]["panels"][0]
    changes: list[tuple[dict[str, Any], str]] = [
        ({"bucket_seconds": 60}, "bucket_seconds is for timeseries panels, not number"),
        ({"formats": {"last_5_min": "euros"}}, "formats"),
    ]
    for change, message in changes:
        broken = {**raw, "dashboards": [{**raw["dashboards"][0], "panels": [{**panel, **change}]}]}
        with pytest.raises(ConfigError, match=message):
            parse_definition(broken)
