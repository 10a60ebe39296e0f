"""The layout is checked, not described: the README's layout section is the tree of src/rtap, and the unit and
integration tests mirror the package (a test file is named after the module it tests)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
PACKAGE = REPO / "src" / "rtap"
TESTS = REPO / "tests"
# tests/<layer>/bench mirrors the benchmarks' package, which lives outside the shipped one.
SOURCES = {"bench": REPO / "bench" / "rtap_bench"}
# What tests/unit/deploy checks: deploy/'s folders and files, and the two that sit at the repository's root.
DEPLOY_ROOT_ARTIFACTS = {"dockerfile": REPO / "Dockerfile", "github_actions": REPO / ".github" / "workflows"}


def layout_block() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Layout\n", 1)[1]
    return section.split("```", 2)[1]


def named_in(block: str) -> set[str]:
    """Every ``name/`` or ``name.py`` the block mentions, with the directory it is listed under."""
    names: set[str] = set()
    for line in block.splitlines():
        for token in re.findall(r"(?<![\w/.-])([a-z_]+(?:/|\.py))(?![\w])", line):
            names.add(token)
    return names


def tree() -> set[str]:
    """The entries of src/rtap and of its subpackage runtime/, as the README names them."""
    entries = set()
    for directory in (PACKAGE, PACKAGE / "runtime"):
        for path in directory.iterdir():
            if path.name.startswith(("__", ".")) or path.name.endswith(".egg-info"):
                continue
            if path.is_dir():
                entries.add(path.name + "/")
            elif path.suffix == ".py":
                entries.add(path.name)
    return entries


def test_every_package_and_module_is_in_the_readme_layout() -> None:
    missing = tree() - named_in(layout_block())
    assert not missing, f"README.md ## Layout does not list {sorted(missing)}"


def test_the_readme_layout_names_nothing_that_is_not_there() -> None:
    block = layout_block()
    src_part = block.split("bench/", 1)[0]  # the lines about src/rtap; the repository's folders follow
    listed = named_in(src_part) - {"src/", "rtap/"}
    subfolders = {p.name + "/" for p in PACKAGE.rglob("*") if p.is_dir() and not p.name.startswith("__")}
    modules = {p.name for p in PACKAGE.rglob("*.py")}
    unknown = {name for name in listed if name not in subfolders | modules}
    assert not unknown, f"README.md ## Layout lists {sorted(unknown)}, which src/rtap does not have"


def module_names(directory: Path) -> set[str]:
    """The modules and subpackages (or, for deploy/, the artifacts) a test file in the mirror may be named after."""
    return {
        path.name.split(".")[0]
        for path in directory.iterdir()
        if not path.name.startswith(("__", ".")) and (path.is_dir() or path.suffix in {".py", ".sql", ".mk"})
    }


def names_a_test_may_take(relative: Path) -> set[str] | None:
    """What a test file at ``tests/<layer>/<relative>`` may be named after; None: any name (repository checks)."""
    parts = relative.parent.parts
    if parts[:1] == ("repository",):  # checks of the repository's own files: README, secrets, pre-commit
        return None
    if parts[:1] == ("deploy",):
        assert all(path.exists() for path in DEPLOY_ROOT_ARTIFACTS.values())
        return module_names(REPO / "deploy") | set(DEPLOY_ROOT_ARTIFACTS)
    root = SOURCES.get(parts[0], PACKAGE) if parts else PACKAGE
    source = root.joinpath(*parts[1:]) if parts and parts[0] in SOURCES else root.joinpath(*parts)
    assert source.is_dir(), f"tests/.../{relative.parent} mirrors no directory ({source.relative_to(REPO)})"
    return module_names(source)


def test_unit_and_integration_tests_are_named_after_the_module_they_test() -> None:
    """``test_<module>.py`` or ``test_<module>_<aspect>.py`` beside its module's mirror; e2e tests are scenarios."""
    misnamed = []
    for layer in ("unit", "integration"):
        for path in sorted((TESTS / layer).rglob("test_*.py")):
            relative = path.relative_to(TESTS / layer)
            names = names_a_test_may_take(relative)
            tested = path.stem.removeprefix("test_")
            if names is not None and not any(tested == name or tested.startswith(name + "_") for name in names):
                misnamed.append(f"tests/{layer}/{relative}")
    assert not misnamed, f"not named after a module of the directory they mirror: {misnamed}"
