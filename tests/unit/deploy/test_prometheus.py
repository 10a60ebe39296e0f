"""`promtool check` and `promtool test rules` on deploy/prometheus (Debian's `prometheus` package ships promtool;
`make system-deps` installs it). Part of the unit tests, so `make test` and `make test-unit` run them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PROMETHEUS_DIR = Path(__file__).resolve().parents[3] / "deploy" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: run `make system-deps` (Debian's prometheus package)"
    return subprocess.run([binary, *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=120, check=False)


def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", "rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("config", "options"),
    [
        # compose's: its credential files are compose secrets, present only in Prometheus' container
        ("prometheus.yml", ("--syntax-only",)),
        ("local.yml", ()),
    ],
)
def test_promtool_accepts_the_scrape_configurations(config: str, options: tuple[str, ...]) -> None:
    result = promtool("check", "config", *options, config)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_passes_its_promtool_unit_tests() -> None:
    result = promtool("test", "rules", "rules.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
