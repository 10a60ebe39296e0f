"""Peak RSS and CPU time from /proc, checked against a real child process."""

from __future__ import annotations

import os
import subprocess
import sys

from rtap_bench import procfs
from rtap_bench.procfs import children, peak_rss_mb, tree_peak_rss_mb

# Measured from a fresh process of its own: a test worker's other descendants (a broker or a JVM an earlier test
# left exiting) leave the live sum when they end without being this process's children to reap.
MEASURE = """
import os, subprocess, sys
from rtap_bench.procfs import tree_cpu_s
before = tree_cpu_s(os.getpid())
burn = "import time\\nend = time.process_time() + 0.3\\nwhile time.process_time() < end: pass"
subprocess.run([sys.executable, "-c", burn], check=True)  # reaped: counted in cutime
print(tree_cpu_s(os.getpid()) - before)
"""


def test_cpu_time_grows_with_work_and_includes_children() -> None:
    grown = subprocess.run([sys.executable, "-c", MEASURE], check=True, capture_output=True, text=True).stdout
    assert float(grown) >= 0.25


def test_peak_rss_of_a_child_that_allocates() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; b = bytearray(64 * 1024 * 1024); sys.stdin.read()"],
        stdin=subprocess.PIPE,
    )
    peak = None
    try:
        for _ in range(100):
            peak = peak_rss_mb(child.pid)
            if peak is not None and peak >= 64:
                break
            subprocess.run(["sleep", "0.05"], check=True)
        assert child.pid in children(os.getpid())
        assert peak is not None
        assert peak >= 64
        tree = tree_peak_rss_mb(os.getpid())
        assert tree is not None
        assert tree >= peak
    finally:
        child.communicate(b"")


def test_a_gone_process_has_no_peak() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert peak_rss_mb(child.pid) is None


def test_steal_is_a_share_of_the_machines_cpu_time_between_two_readings() -> None:
    before = procfs.cpu_jiffies()
    sum(i * i for i in range(200_000))  # some ticks pass
    after = procfs.cpu_jiffies()
    assert after[0] >= before[0]
    assert after[1] >= before[1]
    assert 0.0 <= procfs.steal_share(before, after) <= 1.0
    assert procfs.steal_share((100, 10), (200, 35)) == 0.25
    assert procfs.steal_share((100, 10), (100, 10)) == 0.0  # no time passed: nothing stolen
