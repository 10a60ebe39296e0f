"""Log the full collections of every Python process that starts with this folder on its ``PYTHONPATH``.

    PYTHONPATH=bench/rtap_bench/gc_probe GC_PROBE_DIR=/tmp/gc rtap up

Python imports ``sitecustomize`` at start-up, and rtap's children (the stream job's Spark Python workers, the
collector) inherit the variable, so each process appends to ``$GC_PROBE_DIR/gc-<pid>.log`` (a forked Spark worker
to its daemon's file): its command line first, then one line per full (generation 2) collection, and per any
collection over 20 ms: the wall clock, the generation, its duration in ms, what it collected and, for a full one,
how many objects the collector still tracks. ``bench/results/gc-freeze/`` was measured with it.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from typing import Any

_SLOW_MS = 20.0
_directory = os.environ.get("GC_PROBE_DIR", "/tmp/rtap-gc-probe")
os.makedirs(_directory, exist_ok=True)
_log = open(os.path.join(_directory, f"gc-{os.getpid()}.log"), "a", buffering=1)  # noqa: SIM115  # the process's life
_log.write(f"# {os.getpid()} {' '.join(sys.argv)[:200]}\n")
_started = [0.0]


def _probe(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
        return
    ms = (time.perf_counter() - _started[0]) * 1000
    generation = info["generation"]
    if generation == 2 or ms > _SLOW_MS:
        tracked = len(gc.get_objects()) if generation == 2 else -1
        _log.write(f"{time.time():.3f} gen{generation} {ms:.1f} ms collected {info['collected']} tracked {tracked}\n")


gc.callbacks.append(_probe)
