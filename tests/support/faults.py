"""Shared by the fault tests: the run's scale, the measurement of one faulted run, and the results table.

Scale: ``RTAP_FAULTS_SCALE=small`` (default; CI) or ``large`` (``make faults``: larger runs at higher rates, five
kills, and the table of every fault written to ``bench/results/faults.json`` and ``faults.md``). A run's row is
measured from the warehouse through the same reconciliation operators use (``rtap.ops.reconcile``).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from rtap.generate import GroundTruth
from rtap.ingest.producer import ProduceReport, produce_run
from rtap.ingest.topics import ensure_topics
from rtap.ops.reconcile import observe, reconcile
from rtap.settings import Settings
from rtap.warehouse import create_client
from tests.support.paths import REPO_ROOT
from tests.support.pipeline import StreamProcess

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


def scrape(port: int) -> dict[tuple[str, str], float]:
    """A process's metrics endpoint: (sample name, cause label or "") -> value."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {
        (sample.name, sample.labels.get("cause", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def job_progress(settings: Settings) -> int:
    """Records committed so far (0 before the first run created the tables); the job must not be running."""
    if not settings.paths.chdb.exists():
        return 0
    with create_client(settings) as client:
        return int(client.query_rows("SELECT sum(input_rows) FROM {db}.pipeline_batches FINAL")[0][0] or 0)


def kill_9_while_producing(
    settings: Settings, *, rate: float, events: int, kills: int, seed: int, lose_checkpoint: bool = False
) -> tuple[GroundTruth, list[str]]:
    """``events`` produced open loop at ``rate`` while the job is killed -9 ``kills`` times and started again;
    the run's truth and the committed records at each kill, once the last job drained the run and stopped.

    Kill k lands somewhere in the k-th of ``kills + 1`` equal shares of the run (so the last job still has work),
    after a random extra delay of up to two batch intervals: in the middle of a batch (Spark planned it, the sink
    wrote some of its tables) or between two. The traffic starts when the first job subscribes, so the first
    kills come while it still arrives (and the job restarts behind a growing backlog). ``lose_checkpoint``: each
    kill also deletes Spark's checkpoint, so the next job resumes from the warehouse and cuts its batches anew.
    """
    share = events // (kills + 1)
    # A restarted job catches up in full batches: one batch must not swallow the rest of a share, or the next
    # kill would come after the whole run was read.
    assert settings.stream.max_batch_records <= share // 2, "more kills than the batch size allows"
    ensure_topics(settings.kafka)  # before the job subscribes
    rng = random.Random(seed)
    reports: list[ProduceReport] = []
    producer = threading.Thread(
        target=lambda: reports.append(produce_run(settings, rate=rate, count=events, seed=seed)), daemon=True
    )
    moments: list[str] = []
    for kill in range(kills):
        # Progress is read before the job starts: reading it opens the warehouse, which the job must own.
        target = max(job_progress(settings) + 1, kill * share + rng.randint(1, share))
        job = StreamProcess(settings)
        if not kill:  # the traffic starts once the first job subscribes, not during its Spark start-up
            job.wait_logged("micro-batches of at most")
            producer.start()
        reached = job.wait_processed(target)
        time.sleep(rng.uniform(0, 2 * settings.stream.trigger_interval_s + 1))
        job.kill()  # SIGKILL to the whole process group: the JVM too, no shutdown hook runs
        if lose_checkpoint:
            shutil.rmtree(settings.paths.checkpoints / "stream")
        moments.append(f"{reached:,}" + (" while producing" if producer.is_alive() else ""))
    producer.join(timeout=600)
    assert not producer.is_alive(), "the producer did not finish"
    (report,) = reports
    assert report.failed == 0, f"{report.failed} records not delivered"
    truth = GroundTruth.from_json(report.truth_path.read_bytes())
    produced = truth.totals().produced
    job = StreamProcess(settings)
    job.wait_processed(produced)
    assert job.stop() == 0
    return truth, moments
