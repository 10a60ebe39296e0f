"""``bench/rtap_bench/gc_probe``: a Python process started with it on its path logs its full collections."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.paths import REPO_ROOT


def test_a_process_with_the_probe_on_its_path_logs_each_full_collection(tmp_path: Path) -> None:
    code = "import gc\nfor _ in range(3):\n    gc.collect()\n"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT / "bench" / "rtap_bench" / "gc_probe"),
        "GC_PROBE_DIR": str(tmp_path),
    }
    process = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert process.returncode == 0, process.stderr
    (log,) = tmp_path.glob("gc-*.log")
    header, *lines = log.read_text(encoding="utf-8").splitlines()
    assert header.startswith(f"# {log.stem.removeprefix('gc-')} ")
    full = [line.split() for line in lines if " gen2 " in line]
    assert len(full) >= 3  # the three explicit ones, and any the interpreter ran on its own
    for _, generation, ms, unit, _, collected, _, tracked in full:
        assert (generation, unit) == ("gen2", "ms")
        assert float(ms) >= 0
        assert int(collected) >= 0
        assert int(tracked) > 0
