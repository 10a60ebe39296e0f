"""The pre-commit hooks run what `make lint` runs, with the same pinned tools (.pre-commit-config.yaml)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]


def test_the_hooks_are_valid_and_are_the_lint_targets_tools() -> None:
    config = REPO / ".pre-commit-config.yaml"
    pre_commit = Path(sys.executable).with_name("pre-commit")
    checked = subprocess.run([pre_commit, "validate-config", config], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    hooks = [hook for repo in yaml.safe_load(config.read_text())["repos"] for hook in repo["hooks"]]
    tools = {Path(hook["entry"].split()[0]).name for hook in hooks}
    lint = re.search(r"^lint:.*\n((?:\t.*\n)+)", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert lint is not None
    make_tools = {Path(line.split()[0].replace("$(BIN)", ".venv/bin")).name for line in lint.group(1).splitlines()}
    assert tools == make_tools
    assert all(hook["entry"].startswith(".venv/bin/") for hook in hooks)
