"""The alert rules: the repository's file is the defaults' output, with the thresholds rtap already uses,
and every alert has a promtool test and a runbook."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from rtap.metrics.rules import alert_rules, duration, render_rules
from rtap.ops.checks import ValidationOptions
from rtap.settings import AlertSettings, Settings

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "rules.test.yml"
OPERATIONS = ROOT / "docs" / "operations.md"


def defaults() -> AlertSettings:
    return AlertSettings(_env_file=None)  # type: ignore[call-arg]


def alerts(settings: AlertSettings) -> dict[str, dict[str, object]]:
    rules = alert_rules(settings)["groups"][0]["rules"]
    return {rule["alert"]: rule for rule in rules if "alert" in rule}


def test_the_repository_file_is_the_output_for_the_default_settings() -> None:
    assert RULES.read_text() == render_rules(defaults()), "regenerate: rtap metrics rules --output " + str(RULES)


def test_thresholds_are_those_the_rest_of_rtap_uses() -> None:
    settings = defaults()
    # `rtap status` calls the job stalled on the same setting; `rtap validate` calls data stale at the same age.
    assert Settings(_env_file=None).alerts.stall_after_s == settings.stall_after_s == 60  # type: ignore[call-arg]
    assert ValidationOptions().freshness_s == settings.freshness_p99_s
    rules = alerts(settings)
    assert "> 60\n" in str(rules["RtapStreamNoBatchCommitted"]["expr"])
    assert str(rules["RtapFreshnessP99High"]["expr"]).rstrip().endswith(f"> {settings.freshness_p99_s:g}")
    assert str(rules["RtapDeadLetterShareHigh"]["expr"]).rstrip().endswith(f"> {settings.dead_letter_share:g}")
    assert f">= {settings.restarts}" in str(rules["RtapStreamRestarting"]["expr"])
    assert rules["RtapKafkaLagGrowing"]["for"] == duration(settings.lag_growing_for_s)


def test_settings_change_the_generated_rules() -> None:
    short = AlertSettings(stall_after_s=5, window_s=30, freshness_p99_s=2.5, restarts=2)  # type: ignore[call-arg]
    rules = alerts(short)
    assert "> 5\n" in str(rules["RtapStreamNoBatchCommitted"]["expr"])
    assert "increase(rtap_kafka_log_end_offset[5s])" in str(rules["RtapStreamNoBatchCommitted"]["expr"])
    assert rules["RtapFreshnessP99High"]["for"] == "30s"
    assert "> 2.5" in str(rules["RtapFreshnessP99High"]["expr"])
    assert ">= 2" in str(rules["RtapStreamRestarting"]["expr"])


@pytest.mark.parametrize(
    ("seconds", "text"), [(60, "1m"), (90, "90s"), (3600, "1h"), (5400, "90m"), (0.5, "500ms"), (1.25, "1250ms")]
)
def test_durations_are_prometheus_durations(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_every_alert_has_a_promtool_case_and_a_runbook_section() -> None:
    names = set(alerts(defaults()))
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    }
    assert names == tested
    # Each alert's runbook annotation points at a heading of the same name in docs/operations.md.
    headings = set(re.findall(r"^### (Rtap\w+)$", OPERATIONS.read_text(), re.MULTILINE))
    assert names <= headings, f"no runbook section for {sorted(names - headings)}"
    for name, rule in alerts(defaults()).items():
        assert rule["annotations"]["runbook"] == f"docs/operations.md#{name.lower()}"  # type: ignore[index]


def test_the_refused_events_rule_leaves_out_exactly_what_clients_retry() -> None:
    from rtap.collect.api import ANSWERS
    from rtap.metrics.rules import RETRYABLE_REFUSALS

    assert set(RETRYABLE_REFUSALS) == {reason.value for reason, answer in ANSWERS.items() if answer.retry}
