"""The compose stack's Caddyfiles (deploy/compose/tls, deploy/compose/spark-ui) as Caddy itself reads them: valid,
formatted as `caddy fmt` writes them, and for the Caddy version the stack's image runs. The real Caddy runs them in
front of real rtap services in tests/integration/deploy/test_compose_tls.py and tests/e2e/test_prometheus.py."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.caddy import CADDY, caddy_env, needs_caddy
from tests.support.paths import REPO_ROOT

COMPOSE_DIR = REPO_ROOT / "deploy" / "compose"
CADDYFILES = sorted(COMPOSE_DIR.glob("*/Caddyfile"))
# What the stack gives each Caddyfile's placeholders (compose.yaml's environment of its service).
PLACEHOLDERS = {"RTAP_COLLECTOR_SITE": "localhost", "SPARK_UI_TOKEN": "a.token.for-validation"}


def test_every_caddy_service_runs_the_version_make_test_builds() -> None:
    services = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())["services"]
    images = {service["image"] for service in services.values() if str(service.get("image", "")).startswith("caddy:")}
    (built,) = re.findall(r"^CADDY_VERSION := v(\S+)$", (REPO_ROOT / "Makefile").read_text(), re.MULTILINE)
    assert images == {f"caddy:{built}-alpine"}
    mounted = {
        Path(COMPOSE_DIR / volume.split(":")[0]).resolve()
        for service in services.values()
        for volume in service.get("volumes") or []
        if volume.endswith(":/etc/caddy/Caddyfile:ro")
    }
    assert mounted == set(CADDYFILES)


@needs_caddy
@pytest.mark.parametrize("caddyfile", CADDYFILES, ids=lambda path: path.parent.name)
def test_caddy_accepts_and_formats_the_caddyfile(caddyfile: Path, tmp_path: Path) -> None:
    env = {**caddy_env(tmp_path), **PLACEHOLDERS}
    command = [str(CADDY), "validate", "--config", str(caddyfile), "--adapter", "caddyfile"]
    validated = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert validated.returncode == 0, validated.stderr[-3000:]
    assert "Valid configuration" in validated.stdout + validated.stderr
    formatted = subprocess.run([str(CADDY), "fmt", str(caddyfile)], capture_output=True, text=True, timeout=30)
    assert formatted.stdout == caddyfile.read_text(), f"run: caddy fmt --overwrite {caddyfile}"
