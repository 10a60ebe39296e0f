"""No import circle anywhere in rtap or the benchmarks, function-level imports included.

import-linter's contracts (``make lint``) keep the layers pointing one way; a circle inside one layer (two
modules of a package importing each other, often hidden behind an import inside a function) is what they
cannot see, and what makes a package impossible to read one module at a time.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest


def import_circles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    circles: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph.find_modules_directly_imported_by(target)))))
                    break
                if target in on_stack:
                    low[module] = min(low[module], index[target])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[module])
                if low[module] == index[module]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == module:
                            break
                    if len(component) > 1:
                        circles.append(sorted(component))
    return circles


def test_no_module_imports_itself_through_others() -> None:
    graph = grimp.build_graph("rtap", "rtap_bench", exclude_type_checking_imports=True)
    assert "rtap.stream.job" in graph.modules  # the graph is the real package, not an empty one
    circles = import_circles(graph)
    assert not circles, f"import circles (each a set of modules importing one another): {circles}"


def test_a_circle_is_found_where_there_is_one() -> None:
    graph = grimp.ImportGraph()
    for module in ("pkg", "pkg.a", "pkg.b", "pkg.c"):
        graph.add_module(module)
    graph.add_import(importer="pkg.a", imported="pkg.b")
    graph.add_import(importer="pkg.b", imported="pkg.c")
    graph.add_import(importer="pkg.c", imported="pkg.a")
    graph.add_import(importer="pkg", imported="pkg.a")
    assert import_circles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]


REPO = Path(__file__).resolve().parents[3]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(src: Path) -> subprocess.CompletedProcess[str]:
    """``make lint``'s import check, on the package at ``src`` (PYTHONPATH puts it before the installed one)."""
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{REPO / 'bench'}"}
    config = REPO / "pyproject.toml"
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("module", "wrong_way", "refusal"),
    [
        # the base class importing a backend: the warehouse's own contract
        (
            "warehouse/client.py",
            "from rtap.warehouse.chdb import open_chdb",
            "rtap.warehouse.client -> rtap.warehouse.chdb",
        ),
        # a product stage importing a later one: the package's layers
        ("generate/truth.py", "from rtap.stream import transforms", "rtap.generate.truth -> rtap.stream.transforms"),
    ],
)
def test_the_import_contract_fails_when_a_layer_is_crossed_the_wrong_way(
    tmp_path: Path, module: str, wrong_way: str, refusal: str
) -> None:
    package = tmp_path / "rtap"
    shutil.copytree(REPO / "src" / "rtap", package, ignore=shutil.ignore_patterns("__pycache__"))
    target = package / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n\ndef _wrong_way() -> None:\n    {wrong_way}\n")
    crossed = lint_imports(tmp_path)
    assert crossed.returncode != 0
    assert re.search(r"Contracts: \d+ kept, 1 broken\.", crossed.stdout), crossed.stdout
    assert f"- {refusal} (l." in crossed.stdout, crossed.stdout
