"""P under live load: realistic traffic, open loop, against the stack a user runs; freshness and the ceiling.

The drain of a pre-filled topic (P) is the job's best case: full-size batches back to back. A live stream
arrives in small batches, each paying the job's fixed per-batch cost. Here the job is ``rtap up
--no-generator`` (``rtap_bench.stack``: its own broker, rtap's default stream settings, the dashboard and the
status line in its process, as a user runs it) while the outside sender (``rtap_bench.traffic``, in a process
of its own, the same code as ``bench/outside.py``) offers realistic traffic at a fixed rate for ``step_s``
seconds per step, each event stamped with its intended send time.

Per step, after every record sent so far is committed:

- per-event freshness (``traffic.freshness``: commit time of the event's batch - event_time, over every
  event the step stored), its p50, p99, max, and when the step's last event was stored after its end;
- the Kafka lag of the batches committed in the step's second half;
- the sender's achieved rate and how far it fell behind its schedule.

The rule (:func:`judge`): a step where the sender fell more than ``PRODUCER_BEHIND_LIMIT_S`` behind says
nothing about the job (outcome ``producer``). Otherwise the job held when at least two batches committed in
the judged half, the least-squares slope of their Kafka lag stayed under ``LAG_GROWTH_LIMIT`` of the rate
(it kept up) and per-event freshness p99 stayed within ``FRESHNESS_P99_LIMIT_S`` (it kept its promise).

First the fixed rates (``rates``: 1,000, 10,000 and 50,000 events/s by default), whose freshness figures are
the report's; their verdicts seed the search (``rtap_bench.search``), which steps up x1.5 until a step fails,
then bisects, for at most ``max_steps`` more steps. Between steps the job drains any backlog, so each step
starts from zero lag. At the end the phase is reconciled exactly against what the sender sent.
"""

from __future__ import annotations

import statistics
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from rtap.errors import BrokerError
from rtap.settings import Settings
from rtap_bench.drain import time_split, wait_committed
from rtap_bench.procfs import tree_peak_rss_mb
from rtap_bench.search import FAILED, HELD, PRODUCER, Outcome, RateSearch
from rtap_bench.stack import log_path, running_stack
from rtap_bench.traffic import Sent, freshness, send

PRODUCER_BEHIND_LIMIT_S = 1.0
LAG_GROWTH_LIMIT = 0.05
FRESHNESS_P99_LIMIT_S = 3.0
WARM_UP_RATE = 500.0
WARM_UP_S = 2.0
# After the warm-up, before any measured step: traffic whose freshness is reported but not judged. A JVM compiles
# its hot code over the first few hundred batches: on a fresh `rtap up` at 1,000 events/s batches took 450-500 ms
# for ~15 s and 280-330 ms after, so a first 20 s step measured the compilers (p99 1.2-1.7 s) and the same rate a
# minute later the job (0.7-0.9 s). The cold start has its own benchmark (bench_startup). For how long:
# rtap_bench.cli.LEAD_IN_S.
LEAD_IN_RATE = 2_000.0

_BATCHES = """
SELECT toFloat64(finished_at), kafka_lag FROM {db}.pipeline_batches FINAL
WHERE toFloat64(finished_at) >= {since:Float64} AND toFloat64(finished_at) <= {until:Float64}
ORDER BY finished_at
"""


@dataclass(frozen=True)
class BatchPoint:
    """One committed batch: when it finished (epoch s) and the Kafka lag then."""

    finished: float
    kafka_lag: int


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: str
    batches: int  # committed in the judged half
    lag_growth_per_s: float | None


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    mean_x = statistics.fmean(x for x, _ in points)
    mean_y = statistics.fmean(y for _, y in points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return 0.0 if spread == 0 else sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def judge(rate: float, batches: list[BatchPoint], freshness_p99_s: float | None, producer_behind_s: float) -> Verdict:
    """Did the job keep up with ``rate``, within its freshness promise? (The rule is in the module docstring.)"""
    growth = slope([(b.finished, float(b.kafka_lag)) for b in batches]) if len(batches) >= 2 else None

    def verdict(outcome: Outcome, reason: str) -> Verdict:
        return Verdict(outcome, reason, len(batches), growth)

    if producer_behind_s > PRODUCER_BEHIND_LIMIT_S:
        return verdict(PRODUCER, f"the sender fell {producer_behind_s:.1f} s behind its schedule")
    if growth is None or freshness_p99_s is None:
        return verdict(FAILED, f"{len(batches)} batch(es) committed in the judged half: the job is behind")
    if growth > LAG_GROWTH_LIMIT * rate:
        return verdict(FAILED, f"Kafka lag grew by {growth:,.0f} records/s")
    if freshness_p99_s > FRESHNESS_P99_LIMIT_S:
        return verdict(FAILED, f"freshness p99 {freshness_p99_s:.2f} s > {FRESHNESS_P99_LIMIT_S:.0f} s")
    return verdict(HELD, f"lag growth {growth:,.0f} records/s, freshness p99 {freshness_p99_s:.2f} s")


def _batches(settings: Settings, since: float, until: float) -> list[BatchPoint]:
    from rtap.warehouse import create_client

    with create_client(settings, readonly=True) as client:
        rows = client.query_rows(_BATCHES, parameters={"since": since, "until": until})
    return [BatchPoint(float(f), int(lag)) for f, lag in rows]


class LiveJob:
    """The running stack and everything sent to it: one step at a time, each committed before the next."""

    def __init__(self, settings: Settings, process: subprocess.Popen[bytes], timeout_s: float) -> None:
        self.settings = settings
        self.process = process
        self._timeout_s = timeout_s
        self.sends: list[Sent] = []

    def run_name(self) -> str:
        """A fresh user_id prefix for the next run of the sender (what :func:`freshness` selects by)."""
        return f"s{len(self.sends)}x{uuid.uuid4().hex[:6]}"

    def sent(self, sent: Sent) -> None:
        """Account for a run of the sender and wait until the job committed every record sent so far."""
        if sent.failed:
            raise BrokerError(f"sustain: {sent.failed} of {sent.sent} records were not acknowledged")
        self.sends.append(sent)
        total = sum(s.sent for s in self.sends)
        wait_committed(self.settings, self.process, total, self._timeout_s, log_path(self.settings))

    def offer(self, rate: float, seconds: float) -> tuple[Sent, str]:
        """One run of the sender; returns once the job committed every record sent so far."""
        run = self.run_name()
        kafka, stream = self.settings.kafka, self.settings.stream
        sent = send(kafka.bootstrap_servers, kafka.topic, rate, seconds, run, len(self.sends), stream.watermark_delay_s)
        self.sent(sent)
        return sent, run

    def lead_in(self, seconds: float) -> dict[str, Any] | None:
        """The lead-in: :data:`LEAD_IN_RATE` for ``seconds``, measured as a step and judged by nothing; None for 0."""
        return self.step(LEAD_IN_RATE, seconds, "lead-in") if seconds else None

    def step(self, rate: float, seconds: float, kind: str) -> dict[str, Any]:
        """Offer ``rate`` for ``seconds`` and measure the step (module docstring)."""
        from rtap.warehouse import create_client

        sent, run = self.offer(rate, seconds)
        with create_client(self.settings, readonly=True) as client:
            fresh = freshness(client, run, sent)
        batches = _batches(self.settings, sent.started + seconds / 2, sent.ended)
        verdict = judge(rate, batches, fresh["p99_s"], sent.producer_max_behind_s)
        return {
            "kind": kind,
            "rate": rate,
            "achieved_rate": sent.achieved_rate,
            "producer_max_behind_s": sent.producer_max_behind_s,
            "records": sent.sent,
            "freshness": fresh,
            "events_missing": sent.valid - fresh["events"],  # valid events sent that are not in events: 0 when exact
            **asdict(verdict),
        }


def search_steps(
    live: LiveJob, rates: list[float], step_s: float, max_steps: int
) -> tuple[list[dict[str, Any]], RateSearch]:
    """The fixed-rate steps, then the search for the ceiling seeded by their verdicts (``rtap_bench.search``)."""
    search = RateSearch()
    steps: list[dict[str, Any]] = []
    for rate in rates:
        steps.append(live.step(rate, step_s, "fixed"))
        search.record(rate, steps[-1]["outcome"])
    for _ in range(max_steps):
        next_rate = search.next_rate()
        if next_rate is None:
            break
        steps.append(live.step(next_rate, step_s, "search"))
        search.record(next_rate, steps[-1]["outcome"])
    return steps, search


def search_summary(search: RateSearch) -> dict[str, Any]:
    """What the search found, and the rule it judged by."""
    return {
        "sustainable_records_per_s": search.highest_held,
        "lowest_failed_records_per_s": search.lowest_failed,
        "producer_limit_records_per_s": search.producer_limit,
        "ceiling_found": search.ceiling_found,
        "rule": {
            "judged": "batches committed in the second half of each step; freshness over every event of the step",
            "producer_behind_limit_s": PRODUCER_BEHIND_LIMIT_S,
            "lag_growth_limit_of_rate": LAG_GROWTH_LIMIT,
            "freshness_p99_limit_s": FRESHNESS_P99_LIMIT_S,
            "growth": search.growth,
            "resolution": search.resolution,
        },
    }


def sustain(
    settings: Settings, rates: list[float], step_s: float, max_steps: int, timeout_s: float, lead_in_s: float
) -> dict[str, Any]:
    """``rtap up --no-generator`` on ``settings``: the lead-in (``lead_in_s`` at :data:`LEAD_IN_RATE`, none for 0),
    the fixed-rate steps, then the search; reconciled at the end."""
    launched = time.time()
    with running_stack(settings, timeout_s) as process:
        live = LiveJob(settings, process, timeout_s)
        live.offer(WARM_UP_RATE, WARM_UP_S)  # the job's start-up and first (compiling) batch, as for P's drains
        startup_s = time.time() - launched
        lead_in = live.lead_in(lead_in_s)
        steps, search = search_steps(live, rates, step_s, max_steps)
        peak = tree_peak_rss_mb(process.pid)
    return {
        **search_summary(search),
        "stack": "rtap up --no-generator",
        "step_s": step_s,
        "startup_s": startup_s,
        "lead_in": lead_in,
        "steps": steps,
        "records_total": sum(s.sent for s in live.sends),
        "peak_rss_mb": peak,  # the whole stack: rtap up's process, its Spark JVM and Python workers, its broker
        "reconciliation": reconcile_totals(settings, live.sends),
        "time_split": time_split(settings.data_dir, log_path(settings)),
    }


def reconcile_totals(settings: Settings, sends: list[Sent]) -> dict[str, Any]:
    """The warehouse's counts against what the sender sent over the whole phase (after the job stopped)."""
    from rtap.ops.reconcile import observe
    from rtap.warehouse import create_client

    with create_client(settings) as client:
        seen = observe(client, topic=settings.kafka.topic)
    expected = {
        "events": sum(s.valid for s in sends),
        "dead_letters": sum(s.malformed for s in sends),
        "late_events": sum(s.late for s in sends),
        "duplicates": sum(s.duplicates for s in sends),
        "sessions": sum(s.sessions for s in sends),  # each run has sessions of its own
    }
    observed = {name: int(getattr(seen, name)) for name in expected}
    checks = {name: {"expected": expected[name], "observed": observed[name]} for name in expected}
    differences = [
        f"{n}: expected {expected[n]}, observed {observed[n]}" for n in expected if expected[n] != observed[n]
    ]
    accounted = sum(observed[n] for n in ("events", "dead_letters", "late_events", "duplicates"))
    if sum(s.sent for s in sends) != accounted:
        differences.append(f"records sent {sum(s.sent for s in sends)} != events + dead letters + late + duplicates")
    return {"ok": not differences, "checks": checks, "differences": differences}
