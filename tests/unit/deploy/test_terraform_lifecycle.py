"""deploy/aws.mk: the lifecycle targets, run by make with a recording stand-in for terraform.

The point under test is the control flow (what runs, with which variables, and that aws-e2e always
destroys), not AWS: the stand-in records its arguments and the TF_VAR_* it received, and fails where
a scenario says so.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")

FAKE_TERRAFORM = """#!/bin/bash
# Record the subcommand (after -chdir) and the Terraform variables passed in the environment.
shift
echo "$1 admin=${TF_VAR_admin_cidr:-} key=${TF_VAR_public_key_path:-} ref=${TF_VAR_repo_ref:-}" >>"$FAKE_LOG"
case "$1" in
  apply) exit "${FAKE_APPLY_RC:-0}" ;;
  output) [ -n "${FAKE_IP:-}" ] && echo -n "$FAKE_IP" && exit 0; exit 1 ;;
esac
exit 0
"""


@pytest.fixture
def lifecycle(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "terraform"
    fake.write_text(FAKE_TERRAFORM)
    fake.chmod(0o755)
    wrapper = tmp_path / "Makefile"
    # What the project Makefile provides to the included file.
    wrapper.write_text(f"SHELL := /bin/bash\nBIN := {ROOT}/.venv/bin\ninclude {ROOT}/deploy/aws.mk\n")
    log = tmp_path / "terraform.log"
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "FAKE_LOG": str(log),
    }
    return wrapper, log, env


def make(wrapper: Path, target: str, env: dict[str, str], **extra: str) -> subprocess.CompletedProcess[str]:
    variables = {
        "AWS_ADMIN_CIDR": "203.0.113.7/32",
        "AWS_PUBLIC_KEY": "/keys/id_ed25519.pub",
        "AWS_REPO_URL": "https://github.com/example/rtap.git",
        "AWS_REPO_REF": "v0.1.0",
    }
    args = [f"{name}={value}" for name, value in variables.items()]
    return subprocess.run(
        ["make", "-f", str(wrapper), "-C", str(ROOT), target, *args],
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def commands(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_aws_up_initialises_then_applies_with_the_variables(lifecycle: tuple[Path, Path, dict[str, str]]) -> None:
    wrapper, log, env = lifecycle
    result = make(wrapper, "aws-up", env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert commands(log) == [
        "init admin= key= ref=",
        "apply admin=203.0.113.7/32 key=/keys/id_ed25519.pub ref=v0.1.0",
    ]


def test_aws_e2e_destroys_when_apply_fails(lifecycle: tuple[Path, Path, dict[str, str]]) -> None:
    wrapper, log, env = lifecycle
    result = make(wrapper, "aws-e2e", env, FAKE_APPLY_RC="1")
    assert result.returncode != 0
    assert [line.split()[0] for line in commands(log)] == ["init", "apply", "init", "destroy"]
    assert commands(log)[-1] == "destroy admin=203.0.113.7/32 key=/keys/id_ed25519.pub ref=v0.1.0"
    assert "aws-e2e: destroying" in result.stdout


def test_aws_e2e_destroys_when_validation_fails(lifecycle: tuple[Path, Path, dict[str, str]]) -> None:
    wrapper, log, env = lifecycle
    # No public_ip output: aws-validate fails before contacting any host.
    result = make(wrapper, "aws-e2e", env)
    assert result.returncode != 0
    assert [line.split()[0] for line in commands(log)] == ["init", "apply", "output", "init", "destroy"]
    assert "nothing deployed" in result.stdout + result.stderr


def test_aws_check_refuses_an_unknown_admin_address(lifecycle: tuple[Path, Path, dict[str, str]]) -> None:
    wrapper, log, env = lifecycle
    result = subprocess.run(
        ["make", "-f", str(wrapper), "-C", str(ROOT), "aws-up", "AWS_ADMIN_CIDR=/32", "AWS_REPO_URL=https://x/y.git"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "could not work out your address" in result.stdout
    assert commands(log) == []
