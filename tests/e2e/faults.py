"""Shared by the fault tests: the run's scale, the measurement of one faulted run, and the results table.

Scale: ``RTAP_FAULTS_SCALE=small`` (default; CI) or ``large`` (``make faults``: 200k-event runs, five kills,
and the table of every fault written to ``bench/results/faults.json`` and ``faults.md``). A run's row is
measured from the warehouse through the same reconciliation operators use (``rtap.ops.reconcile``).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rtap.generate import GroundTruth
from rtap.ops.reconcile import observe, reconcile
from rtap.settings import Settings
from rtap.warehouse import create_client
from tests.integration.conftest import REPO_ROOT

SCALE = os.environ.get("RTAP_FAULTS_SCALE", "small")
if SCALE not in ("small", "large"):
    raise ValueError(f"RTAP_FAULTS_SCALE must be small or large, not {SCALE!r}")
LARGE = SCALE == "large"
RESULTS = REPO_ROOT / "bench" / "results"


def scaled(small: int, large: int) -> int:
    return large if LARGE else small


@dataclass(frozen=True)
class FaultRow:
    """One faulted run, measured after the job stopped."""

    fault: str
    produced: int
    events: int
    lost: int
    duplicated: int
    dead_letters_exact: bool
    late_exact: bool
    windows_exact: bool
    recorded_gap: int
    detail: str
    measured_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    load_1m: float = field(default_factory=lambda: os.getloadavg()[0])

    @property
    def exact(self) -> bool:
        return self.lost == self.duplicated == 0 and self.dead_letters_exact and self.late_exact and self.windows_exact


def measure(settings: Settings, truth: GroundTruth, fault: str, detail: str) -> FaultRow:
    """Lost and duplicated accepted events (``events`` FINAL vs the truth), and whether the rest is exact.

    Copies of an event collapse under FINAL, so a double-processed record shows in the windows (views,
    events and revenue add up), which ``windows_exact`` covers; a record both skipped and doubled would
    cancel in the count but not in the windows.
    """
    with create_client(settings) as client:
        observed = observe(client, topic=settings.kafka.topic)
    report = {check.name: check for check in reconcile(truth, observed).checks}
    return FaultRow(
        fault=fault,
        produced=truth.produced,
        events=observed.events,
        lost=max(0, truth.accepted - observed.events),
        duplicated=max(0, observed.events - truth.accepted),
        dead_letters_exact=report["dead_letters"].ok,
        late_exact=report["late_events"].ok,
        windows_exact=all(report[name].ok for name in ("duplicates", "sessions", "page_views_1m", "events_1m")),
        recorded_gap=observed.lost,
        detail=detail,
    )


def record(row: FaultRow) -> None:
    """At the large scale, put ``row`` into bench/results/faults.json (one row per fault) and faults.md."""
    if not LARGE:
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "faults.json"
    rows: dict[str, dict[str, Any]] = json.loads(path.read_text())["faults"] if path.exists() else {}
    rows[row.fault] = asdict(row) | {"exact": row.exact}
    command = "make faults  (RTAP_FAULTS_SCALE=large pytest -m faults tests/e2e)"
    path.write_text(json.dumps({"command": command, "faults": rows}, indent=2) + "\n")
    (RESULTS / "faults.md").write_text(_markdown(command, rows))


def _markdown(command: str, rows: dict[str, dict[str, Any]]) -> str:
    lines = [
        "# rtap fault suite (large)",
        "",
        f"Command: `{command}`. Each run is reconciled against the generator's truth after the faults;",
        "`lost`/`duplicated` compare `events` (FINAL) with the truth's accepted events, the exact columns",
        "compare dead letters, late events and every window/session/duplicate count. `recorded gap` = records",
        "Kafka deleted unread and the job skipped on purpose (`--accept-data-loss`), listed in `data_gaps`.",
        "2-core machine shared with other work: the load is the 1-minute load average when the row was measured.",
        "",
        "| fault | events produced | lost | duplicated | dead letters exact | late exact | windows exact "
        "| recorded gap | detail | measured (UTC) | load |",
        "|---|---:|---:|---:|---|---|---|---:|---|---|---:|",
    ]
    for row in rows.values():
        lines.append(
            f"| {row['fault']} | {row['produced']:,} | {row['lost']} | {row['duplicated']} "
            f"| {_yes(row['dead_letters_exact'])} | {_yes(row['late_exact'])} | {_yes(row['windows_exact'])} "
            f"| {row['recorded_gap']:,} | {row['detail']} | {row['measured_at']} | {row['load_1m']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def _yes(flag: bool) -> str:
    return "yes" if flag else "**no**"


def without_late(settings: Settings) -> Settings:
    """``settings`` whose generator sends no late records: for a run that must merge with an earlier one.

    A late record is sent with event_time = now - late_by (120 s in these tests). As the first record of a
    partition in its own run it is on time, but behind the earlier run's watermark it would be late in the
    shared topic, and ``GroundTruth.merge`` rightly refuses. The earlier run still exercises lateness.
    """
    generator = settings.generator.model_copy(update={"late_rate": 0.0})
    return settings.model_copy(update={"generator": generator})


def wait_for_next_minute(after: datetime) -> None:
    """Sleep until the minute after ``after`` began: two runs reconcile as one only in separate minutes
    (distinct users of a minute cannot be added up; see ``GroundTruth.merge``)."""
    boundary = after.replace(second=0, microsecond=0) + timedelta(minutes=1, milliseconds=200)
    time.sleep(max(0.0, (boundary - datetime.now(UTC)).total_seconds()))


def stream_log(settings: Settings) -> str:
    return Path(settings.data_dir / "stream.log").read_text(errors="replace")
