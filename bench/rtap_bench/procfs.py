"""Peak memory and CPU time of processes, and the machine's stolen time, read from /proc (Linux), without psutil.

Peak RSS is ``VmHWM`` (the high-water mark the kernel keeps per process); CPU time is ``utime + stime``
from ``/proc/<pid>/stat`` plus the CPU of reaped children (``cutime + cstime``), so a measurement that
starts and stops a child still counts it.
"""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# A measurement whose machine lost more of its CPU time than this to the host's other tenants ran on a shared
# machine: its absolute figures are a floor, not this machine's measure.
STEAL_QUIET = 0.05


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:  # the process exited between listing and reading
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its closing parenthesis.
    return text[text.rindex(")") + 2 :].split()


def children(pid: int) -> list[int]:
    """Every live descendant of ``pid``."""
    parents: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))) is not None:
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    pending = [pid]
    while pending:
        kids = parents.get(pending.pop(), [])
        found.extend(kids)
        pending.extend(kids)
    return found


def tree_cpu_s(pid: int) -> float:
    """CPU seconds used so far by ``pid``, its live descendants and every child already reaped."""
    ticks = 0
    for member in [pid, *children(pid)]:
        fields = _stat_fields(member)
        if fields is not None:
            # After the state field (index 0): utime, stime, cutime, cstime are at 11..14.
            ticks += sum(int(v) for v in fields[11:15])
    return ticks / _TICKS


def peak_rss_mb(pid: int) -> float | None:
    """The peak resident set size of one process in MiB, or None when it is gone."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def tree_peak_rss_mb(pid: int) -> float | None:
    """Sum of the peaks of ``pid`` and its live descendants: an upper bound of the group's peak."""
    peaks = [p for member in [pid, *children(pid)] if (p := peak_rss_mb(member)) is not None]
    return sum(peaks) if peaks else None


def rss_mb(pid: int) -> float | None:
    """The current resident set size of one process in MiB (None when it is gone)."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def tree_rss_mb(pid: int) -> float | None:
    """Current RSS of ``pid`` and its live descendants, in MiB (None when all are gone)."""
    values = [v for member in [pid, *children(pid)] if (v := rss_mb(member)) is not None]
    return sum(values) if values else None


def cpu_jiffies() -> tuple[int, int]:
    """(all, stolen) CPU time of the machine since boot, in ticks, from ``/proc/stat``'s first line.

    Steal is the time the hypervisor gave this VM's virtual CPUs to another tenant while they had work: on a
    shared host it is what makes one evening 2x slower than the morning for the same code (load averages do not
    show it). Read it around a measurement with :func:`steal_share`.
    """
    fields = (PROC / "stat").read_text(encoding="ascii").split("\n", 1)[0].split()
    ticks = [int(value) for value in fields[1:9]]  # user nice system idle iowait irq softirq steal
    return sum(ticks), ticks[7]


def steal_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of the machine's CPU time stolen between two :func:`cpu_jiffies` readings (0..1)."""
    total = after[0] - before[0]
    return (after[1] - before[1]) / total if total > 0 else 0.0
