"""What a standalone benchmark records beside its figures, and where it writes them (``bench/results``)."""

from __future__ import annotations

import os
import platform
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

RESULTS = Path(__file__).resolve().parents[1] / "results"


def run_facts(module: str, argv: list[str] | None) -> dict[str, Any]:
    """The command that ran (``python -m bench.<module> ...``), when it finished, the machine, and its load
    average at the end: others' work on a shared machine."""
    return {
        "command": f"python -m bench.{module} " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version()},
        "load_average_at_end": [round(x, 1) for x in os.getloadavg()],
    }


def write_results(name: str, result: dict[str, Any], markdown: list[str]) -> None:
    """``result`` as ``<name>.json`` and its report as ``<name>.md``."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    (RESULTS / f"{name}.md").write_text("\n".join(markdown) + "\n")
