"""Static checks of .github/workflows: no GitHub runner is reachable from here, so actionlint (the real
binary, built at a pinned version by ``make test``; it also runs shellcheck on every ``run:`` script) and
the structure read from the YAML are what can be proven before a first run on GitHub.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
ACTIONLINT = ROOT / ".venv-tools" / "bin" / "actionlint"

needs_actionlint = pytest.mark.skipif(not ACTIONLINT.exists(), reason="actionlint not built (make test builds it)")


def actionlint(*paths: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ACTIONLINT), "-no-color", "-oneline", *map(str, paths)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    return dict(yaml.safe_load(WORKFLOW.read_text(encoding="utf-8")))


def triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    # YAML 1.1 (PyYAML) reads the key `on` as the boolean true.
    return dict(workflow.get("on", workflow.get(True)) or {})


def run_lines(job: dict[str, Any]) -> list[str]:
    return [line.strip() for step in job["steps"] for line in str(step.get("run", "")).splitlines()]


@needs_actionlint
def test_actionlint_passes() -> None:
    assert shutil.which("shellcheck"), "shellcheck is missing: actionlint would skip the run: scripts"
    result = actionlint(*sorted((ROOT / ".github" / "workflows").glob("*.y*ml")))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_actionlint
def test_actionlint_is_real_and_strict(tmp_path: Path) -> None:
    """A workflow with a typo'd context, an unknown input and a shell bug must fail."""
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\n"
        "jobs:\n"
        "  a:\n"
        "    runs-on: ubuntu-24.04\n"
        "    steps:\n"
        "      - run: echo ${{ github.evnt_name }} $UNQUOTED_GLOB*\n"
        "      - uses: actions/checkout@v4\n"
        "        with:\n"
        "          no-such-input: 1\n",
        encoding="utf-8",
    )
    result = actionlint(broken, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "evnt_name" in result.stdout
    assert "no-such-input" in result.stdout


def test_every_push_runs_the_readmes_test_command(workflow: dict[Any, Any]) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = re.search(r"^(make test)\s+# every check", readme, re.MULTILINE)
    assert command, "the README no longer names its test command"
    on = triggers(workflow)
    assert "push" in on
    assert not (on["push"] or {}).get("branches"), "every push, on every branch"
    test = workflow["jobs"]["test"]
    assert command.group(1) in run_lines(test)
    assert "if" not in test
    # The machine the README asks for, with Debian's Chromium for the browser tests.
    assert test["container"].startswith("debian:12")
    assert any("chromium" in line for line in run_lines(test))


def test_aws_lifecycle_is_a_manual_job_gated_on_repository_secrets(workflow: dict[Any, Any]) -> None:
    on = triggers(workflow)
    assert on["workflow_dispatch"]["inputs"]["aws_e2e"]["default"] is False
    job = workflow["jobs"]["aws-e2e"]
    assert job["if"] == "github.event_name == 'workflow_dispatch' && inputs.aws_e2e"
    assert job["needs"] == "test", "a commit that fails its tests is never deployed"
    assert "make aws-e2e" in " ".join(run_lines(job))
    # Credentials only from a repository secret, through OIDC: no long-lived keys in the workflow.
    assert job["env"]["AWS_ROLE_ARN"] == "${{ secrets.AWS_ROLE_ARN }}"
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    first = job["steps"][0]
    assert first["if"] == "env.AWS_ROLE_ARN == ''"
    assert "exit 1" in first["run"], "a missing secret must fail the job with its name, not skip it"
    credentials = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("aws-actions/"))
    assert credentials["with"]["role-to-assume"] == "${{ secrets.AWS_ROLE_ARN }}"
    # Never cancelled half-way (aws-e2e destroys at its end), and bounded in time.
    assert job["concurrency"] == {"group": "aws-e2e", "cancel-in-progress": False}
    assert job["timeout-minutes"] <= 120


def test_least_privilege_and_pinned_tools(workflow: dict[Any, Any]) -> None:
    assert workflow["permissions"] == {"contents": "read"}
    assert "secrets." not in str(workflow["jobs"]["test"]), "the test job gets no secret"
    for name, job in workflow["jobs"].items():
        assert job.get("timeout-minutes"), f"{name} has no timeout"
        for step in job["steps"]:
            uses = step.get("uses")
            if uses:  # pinned to a commit: test_every_action_is_pinned_to_a_commit_with_its_tag_named
                assert PINNED.match(uses), f"{name}: {uses} is not pinned to a commit"
            if str(uses).startswith("hashicorp/setup-terraform"):
                assert re.fullmatch(r"\d+\.\d+\.\d+", step["with"]["terraform_version"])
    # Terraform at the version deploy/terraform requires.
    versions = (ROOT / "deploy" / "terraform" / "versions.tf").read_text(encoding="utf-8")
    required = re.search(r'required_version = "~> (\d+\.\d+)"', versions)
    assert required
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            if str(step.get("uses", "")).startswith("hashicorp/setup-terraform"):
                assert step["with"]["terraform_version"].startswith(required.group(1) + ".")


USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?:\s+#\s*(?P<comment>.*))?$")
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(?:/[\w./-]+)?@[0-9a-f]{40}$")


def test_every_action_is_pinned_to_a_commit_with_its_tag_named() -> None:
    """A tag can be moved to other code by whoever controls the action's repository; a commit cannot. The tag
    the commit was taken from stays in a comment, so an update is a reviewable change of both."""
    found = []
    for path in sorted((ROOT / ".github" / "workflows").glob("*.y*ml")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            match = USES.match(line)
            if match is None or match["ref"].startswith(("./", "docker://")):
                continue
            found.append(match["ref"])
            where = f"{path.name}:{number}: {line.strip()}"
            assert PINNED.match(match["ref"]), f"not pinned to a 40-hex commit: {where}"
            assert re.fullmatch(r"v\d+(\.\d+){1,2}", match["comment"] or ""), f"no '# vX.Y.Z' naming the tag: {where}"
    assert found, "no `uses:` found: the pattern no longer matches the workflows"


def test_the_aws_roles_trust_is_scoped_to_the_jobs_environment(workflow: dict[Any, Any]) -> None:
    """With ``repo:OWNER/rtap:*`` any branch's workflow could assume the AWS role and skip the environment's
    reviewers: the documented trust subject is the environment the deploying job runs in, and nothing wider."""
    job = workflow["jobs"]["aws-e2e"]
    environment = job["environment"]
    docs = (ROOT / "docs" / "aws.md").read_text(encoding="utf-8")
    assert f"repo:OWNER/rtap:environment:{environment}" in docs
    assert '"token.actions.githubusercontent.com:sub": "repo:OWNER/rtap:environment:aws"' in docs
    assert "StringEquals" in docs
    for line in docs.splitlines():  # named only as what never to do
        assert "repo:OWNER/rtap:*" not in line or line.startswith("Never"), f"a subject any branch matches: {line}"
    assert not re.search(r"StringLike", docs), "a wildcard match on the subject"
