"""P's sustainable rate and its freshness: open-loop load against one running job.

The drain of a pre-filled topic (P) is the job's best case: one huge batch. A live stream arrives in small
batches, each paying the job's fixed per-batch cost, so the rate it can keep up with is lower. Here the job
runs on its own topic while ``produce_run`` offers load at a fixed rate for ``step_s`` seconds, stamped at
the intended send time (the producer's open-loop schedule: a producer falling behind does not hide latency).

The rule (``judge``), applied to the batches committed in the second half of a step:
- the producer kept its schedule (its lag behind the schedule stayed under ``PRODUCER_LAG_LIMIT_S``);
- Kafka lag did not grow: its least-squares slope over time is under ``LAG_GROWTH_LIMIT`` of the offered rate;
- batch freshness (``pipeline_batches.freshness_ms``: commit time - newest event time) p99 stayed under
  ``FRESHNESS_P99_LIMIT_S``.
The search starts at half of P's drain rate and bisects (geometrically) between the highest rate that held
and the lowest that did not. Between steps the job drains any backlog, so each step starts from zero lag.

Freshness is then measured per event at half the sustainable rate: a probe polls the warehouse through the
job's read-only socket, as a dashboard does, and notes when each batch became visible (``max(batch_id)`` of
``events``) and when each batch's window rows did (``max(updated_at)`` of ``page_views_1m``). An event's
freshness is that visibility time minus its event_time (the intended send time), so it includes the
producer, Kafka, the trigger wait, Spark and the warehouse, with the probe's interval as resolution.

The generator's late_rate is 0 here: the steps' truths are then additive, and the whole phase is reconciled
on the warehouse's totals (the per-window rows of steps sharing a minute cannot be merged exactly).
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from rtap.bench.drain import running_job, time_split, wait_committed
from rtap.errors import BrokerError
from rtap.settings import Settings

PRODUCER_LAG_LIMIT_S = 1.0
LAG_GROWTH_LIMIT = 0.05
FRESHNESS_P99_LIMIT_S = 10.0
PROBE_INTERVAL_S = 0.2
WARM_UP_RECORDS = 500

_BATCHES = """
SELECT toFloat64(finished_at), kafka_lag, freshness_ms, input_rows, duration_ms
FROM {db}.pipeline_batches FINAL
WHERE toFloat64(finished_at) >= {since:Float64} AND toFloat64(finished_at) <= {until:Float64}
ORDER BY finished_at
"""
_PROBE = "SELECT (SELECT max(batch_id) FROM {db}.events), (SELECT toFloat64(max(updated_at)) FROM {db}.page_views_1m)"
_STEP_EVENTS = """
SELECT batch_id, toFloat64(event_time) AS t, event_type IN ('page_view', 'product_view') AS page_view
FROM {db}.events WHERE event_time >= fromUnixTimestamp64Milli({since:Int64})
  AND event_time < fromUnixTimestamp64Milli({until:Int64})
"""
_BATCH_STARTS = "SELECT batch_id, toFloat64(started_at) FROM {db}.pipeline_batches FINAL"


@dataclass(frozen=True)
class BatchPoint:
    """One committed batch: when it finished (epoch s), the Kafka lag then, its freshness, its size."""

    finished: float
    kafka_lag: int
    freshness_ms: int | None
    input_rows: int
    duration_ms: int


@dataclass(frozen=True)
class Verdict:
    sustainable: bool
    reason: str
    batches: int
    lag_growth_per_s: float | None
    freshness_p50_s: float | None
    freshness_p99_s: float | None


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    mean_x = statistics.fmean(x for x, _ in points)
    mean_y = statistics.fmean(y for _, y in points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return 0.0 if spread == 0 else sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def judge(rate: float, batches: list[BatchPoint], producer_max_lag_s: float) -> Verdict:
    """Did the job keep up with ``rate`` during the judged batches? (The rule is in the module docstring.)"""
    fresh = [b.freshness_ms / 1000 for b in batches if b.freshness_ms is not None]
    p50 = percentile(fresh, 50) if fresh else None
    p99 = percentile(fresh, 99) if fresh else None
    growth = slope([(b.finished, float(b.kafka_lag)) for b in batches]) if len(batches) >= 2 else None

    def verdict(ok: bool, reason: str) -> Verdict:
        return Verdict(ok, reason, len(batches), growth, p50, p99)

    if producer_max_lag_s > PRODUCER_LAG_LIMIT_S:
        return verdict(False, f"the producer fell {producer_max_lag_s:.1f} s behind its schedule")
    if growth is None or p99 is None:
        return verdict(False, f"{len(batches)} batch(es) committed in the judged half: the job is behind")
    if growth > LAG_GROWTH_LIMIT * rate:
        return verdict(False, f"Kafka lag grew by {growth:,.0f} records/s")
    if p99 > FRESHNESS_P99_LIMIT_S:
        return verdict(False, f"batch freshness p99 {p99:.1f} s > {FRESHNESS_P99_LIMIT_S:.0f} s")
    return verdict(True, f"lag growth {growth:,.0f} records/s, batch freshness p99 {p99:.1f} s")


def next_rate(low: float | None, high: float | None, rate: float) -> float:
    """The next rate to try: double up from a rate that held, halve down from one that did not, then bisect."""
    if low is not None and high is not None:
        return math.sqrt(low * high)
    return rate * 2 if high is None else rate / 2


class Probe:
    """Polls what a dashboard sees, every ``PROBE_INTERVAL_S``, in a thread: (time, newest batch, newest window)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._stop = threading.Event()
        self.samples: list[tuple[float, int, float]] = []
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="rtap-bench-probe", daemon=True)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        from rtap.warehouse import create_client

        with create_client(self._settings, readonly=True) as client:
            while not self._stop.wait(PROBE_INTERVAL_S):
                try:
                    batch, updated = client.query_rows(_PROBE)[0]
                except Exception:  # noqa: BLE001 - a missed poll only coarsens the resolution; counted
                    self.failed += 1
                    continue
                # The answer's arrival time: the data was visible at or before it.
                self.samples.append((time.time(), int(batch or 0), float(updated or 0.0)))


def first_seen(samples: list[tuple[float, int, float]], value_of: Any, threshold: float) -> float | None:
    """The first probe time whose observed value reached ``threshold`` (samples are in time order)."""
    for sample in samples:
        if value_of(sample) >= threshold:
            return float(sample[0])
    return None


def event_freshness(
    events: list[tuple[int, float, bool]],
    batch_starts: dict[int, float],
    samples: list[tuple[float, int, float]],
) -> dict[str, Any]:
    """Per-event freshness, raw (the event's batch visible in ``events``) and windows (its page_views_1m row)."""
    raw: list[float] = []
    windows: list[float] = []
    raw_seen: dict[int, float | None] = {}
    window_seen: dict[int, float | None] = {}
    for batch, event_time, page_view in events:
        if batch not in raw_seen:
            raw_seen[batch] = first_seen(samples, lambda s: s[1], batch)
            start = batch_starts.get(batch)
            window_seen[batch] = None if start is None else first_seen(samples, lambda s: s[2], start)
        if (seen := raw_seen[batch]) is not None:
            raw.append(seen - event_time)
        if page_view and (seen := window_seen[batch]) is not None:
            windows.append(seen - event_time)

    def stats(values: list[float]) -> dict[str, Any]:
        if not values:
            return {"events": 0, "p50_s": None, "p99_s": None}
        return {"events": len(values), "p50_s": percentile(values, 50), "p99_s": percentile(values, 99)}

    return {"raw": stats(raw), "windows": stats(windows), "events_unseen": len(events) - len(raw)}


def _batches(settings: Settings, since: float, until: float) -> list[BatchPoint]:
    from rtap.warehouse import create_client

    with create_client(settings, readonly=True) as client:
        rows = client.query_rows(_BATCHES, parameters={"since": since, "until": until})
    return [
        BatchPoint(float(f), int(lag), None if fr is None else int(fr), int(n), int(d)) for f, lag, fr, n, d in rows
    ]


def sustain(
    settings: Settings,
    start_rate: float,
    step_s: float,
    max_steps: int,
    timeout_s: float,
    freshness_rate: float | None = None,
) -> dict[str, Any]:
    """Search the sustainable rate, then measure freshness at half of it (or at ``freshness_rate``);
    reconcile the totals at the end."""
    from rtap.generate.truth import GroundTruth
    from rtap.ingest.producer import ProduceReport, produce_run

    settings = settings.model_copy(update={"generator": settings.generator.model_copy(update={"late_rate": 0.0})})
    reports: list[ProduceReport] = []

    def produce(rate: float, **shape: Any) -> ProduceReport:
        report = produce_run(settings, rate=rate, seed=settings.generator.seed + len(reports), **shape)
        if report.failed:
            raise BrokerError(f"sustain: {report.failed} records failed: {report.first_error}")
        reports.append(report)
        return report

    def produced() -> int:
        return sum(r.delivered for r in reports)

    steps: list[dict[str, Any]] = []
    launched = time.time()
    with running_job(settings) as process:
        produce(0, count=WARM_UP_RECORDS)
        wait_committed(settings, process, produced(), timeout_s)  # the job's start-up, as for P's drains
        startup_s = time.time() - launched
        low: float | None = None
        high: float | None = None
        rate = start_rate
        for _ in range(max_steps):
            began = time.time()
            report = produce(rate, duration_s=step_s)
            ended = time.time()
            wait_committed(settings, process, produced(), timeout_s)
            verdict = judge(rate, _batches(settings, began + step_s / 2, ended), report.max_lag_s)
            steps.append(
                {"rate": rate, "records": report.delivered, "producer_max_lag_s": report.max_lag_s, **asdict(verdict)}
            )
            if verdict.sustainable:
                low = rate if low is None else max(low, rate)
            else:
                high = rate if high is None else min(high, rate)
            rate = next_rate(low, high, rate)
        half = (low if low is not None else min(s["rate"] for s in steps)) / 2
        fresh_rate = freshness_rate or half
        with Probe(settings) as probe:
            began = time.time()
            report = produce(fresh_rate, duration_s=step_s)
            ended = time.time()
            wait_committed(settings, process, produced(), timeout_s)
            time.sleep(2 * PROBE_INTERVAL_S)  # one more poll after the last commit
        batch_fresh = [
            b.freshness_ms / 1000 for b in _batches(settings, began, time.time()) if b.freshness_ms is not None
        ]
        freshness = _measure_freshness(settings, began, ended, probe.samples)
        freshness.update(
            rate=fresh_rate,
            records=report.delivered,
            probe_interval_s=PROBE_INTERVAL_S,
            probe_failures=probe.failed,
            # The batch-level figure, for comparison: commit time - newest event time of each batch.
            batch_freshness_p50_s=percentile(batch_fresh, 50) if batch_fresh else None,
            batch_freshness_p99_s=percentile(batch_fresh, 99) if batch_fresh else None,
        )
    truth = [GroundTruth.from_json(r.truth_path.read_bytes()).totals() for r in reports]
    return {
        "sustainable_records_per_s": low,
        "rule": {
            "judged": "batches committed in the second half of each step",
            "producer_lag_limit_s": PRODUCER_LAG_LIMIT_S,
            "lag_growth_limit_of_rate": LAG_GROWTH_LIMIT,
            "batch_freshness_p99_limit_s": FRESHNESS_P99_LIMIT_S,
        },
        "step_s": step_s,
        "startup_s": startup_s,
        "steps": steps,
        "freshness": freshness,
        "reconciliation": _reconcile_totals(settings, truth),
        "time_split": time_split(settings.data_dir),
    }


def _measure_freshness(
    settings: Settings, began: float, ended: float, samples: list[tuple[float, int, float]]
) -> dict[str, Any]:
    from rtap.warehouse import create_client

    with create_client(settings, readonly=True) as client:
        rows = client.query_rows(_STEP_EVENTS, parameters={"since": int(began * 1000), "until": int(ended * 1000)})
        starts = {int(b): float(t) for b, t in client.query_rows(_BATCH_STARTS)}
    events = [(int(b), float(t), bool(p)) for b, t, p in rows]
    return event_freshness(events, starts, samples)


def _reconcile_totals(settings: Settings, truths: list[Any]) -> dict[str, Any]:
    """The warehouse's counts against the summed truths of every run of the phase (after the job stopped)."""
    from rtap.ops.reconcile import observe
    from rtap.warehouse import create_client

    with create_client(settings) as client:
        seen = observe(client, topic=settings.kafka.topic)
    expected = {
        "events": sum(t.accepted for t in truths),
        "dead_letters": sum(t.dead_letters for t in truths),
        "late_events": sum(t.late for t in truths),
        "duplicates": sum(t.duplicates for t in truths),
        "sessions": sum(t.sessions for t in truths),
    }
    observed = {name: int(getattr(seen, name)) for name in expected}
    checks = {name: {"expected": expected[name], "observed": observed[name]} for name in expected}
    differences = [
        f"{n}: expected {expected[n]}, observed {observed[n]}" for n in expected if expected[n] != observed[n]
    ]
    if sum(t.produced for t in truths) != sum(
        observed[n] for n in ("events", "dead_letters", "late_events", "duplicates")
    ):
        differences.append("records produced != events + dead letters + late + duplicates")
    return {"ok": not differences, "checks": checks, "differences": differences}
