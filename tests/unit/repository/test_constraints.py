"""constraints.txt, the full package set: it agrees with every pin in the pyproject files, every install uses it,
and the environment these tests run in is exactly it (so a fresh clone tests what CI tested, numpy and the
ClickHouse engine included, not whatever the index serves that day)."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.paths import REPO_ROOT as ROOT

CONSTRAINTS = ROOT / "constraints.txt"
PYPROJECTS = (ROOT / "pyproject.toml", ROOT / "bench" / "pyproject.toml")


def _constraints() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = version
    return pins


def _declared() -> list[Requirement]:
    requirements: list[Requirement] = []
    for path in PYPROJECTS:
        project = tomllib.loads(path.read_text())["project"]
        lines = list(project["dependencies"])
        for extra in project.get("optional-dependencies", {}).values():
            lines.extend(extra)
        requirements.extend(Requirement(line) for line in lines)
    return requirements


def test_every_declared_dependency_is_locked_at_its_pin() -> None:
    locked = _constraints()
    for requirement in _declared():
        name = canonicalize_name(requirement.name)
        if name == "rtap":  # the benchmarks depend on the project itself, installed editable
            continue
        assert name in locked, f"{requirement.name} is declared but not in constraints.txt (`make lock`)"
        assert requirement.specifier.contains(locked[name]), (
            f"{requirement.name}: constraints.txt has {locked[name]}, the pyproject asks {requirement.specifier} "
            "(`make lock`)"
        )


def test_the_test_environment_is_the_locked_set() -> None:
    for name, version in _constraints().items():
        installed = metadata.version(name)
        assert installed == version, f"{name} {installed} is installed, constraints.txt has {version} (`make install`)"


def test_every_install_of_the_project_uses_the_constraints() -> None:
    installs = [
        line
        for path in (ROOT / "Makefile", ROOT / "Dockerfile")
        for line in path.read_text().splitlines()
        if re.search(r"pip install .*(-e |/wheels/rtap)", line) and "LOCK_VENV" not in line
    ]
    assert len(installs) == 3, installs  # rtap and the benchmarks in the virtualenv, the wheel in the image
    for line in installs:
        assert "-c constraints.txt" in line, line
