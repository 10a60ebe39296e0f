"""The README's layout section is the tree: every package and module of src/rtap is in it, nothing else."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
PACKAGE = REPO / "src" / "rtap"


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
