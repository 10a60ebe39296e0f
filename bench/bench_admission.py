"""The dashboard's admission control: the job's per-event freshness with 20 viewers beside it, and without.

    .venv/bin/python -m bench.bench_admission [--rate 10000] [--step-seconds 60] [--rounds 2] [--viewers 20]
        [--history-minutes 60]

One private broker, the stream job as `rtap stream` runs it (its own process, owner of the chDB warehouse, rtap's
default stream settings on two cores), the outside sender (``rtap_bench.traffic``: realistic traffic, open loop,
``--rate`` events/s) and two `rtap dashboard` processes reading through the job's socket, as a dashboard beside
`rtap up` does: one with rtap's admission control as shipped, one with it off (no shared results, 64 query
slots: what the dashboard was before issue 24). Each round runs three steps of ``--step-seconds``, in an order
that turns every round so no phase always comes first:

* **alone**: the job and the sender only;
* **viewers**: ``--viewers`` page viewers on the admission-controlled dashboard (each asks every panel of the
  *Clickstream live* dashboard on the panel's own refresh interval, over the page's live hour, as the page does:
  the panels due within a second of a poll in one request, ``/api/panels?ids=``)
  plus ``--loops`` clients asking the heaviest panel over the widest range (24 h) back to back, no pause but
  the Retry-After of a 429 or 503; each client from its own loopback address (the dashboard limits requests per
  address);
* **viewers, no admission**: the same load on a dashboard without the result cache, the query slots and the
  per-client rate limit, from pages that ask one request per panel (rtap before issue 24).

The warehouse starts with ``--history-minutes`` of stored traffic at ``--rate`` up to the moment the job starts
(``rtap_bench.history``): the page's live hour then holds what it holds after the job has run that long, as a
dashboard beside a running pipeline reads it. A panel whose query reads every event of its range costs little
over the few minutes a bench step adds and much over an hour (bench/results/panels.md); 0 starts empty.

Per step, once the job has committed everything sent: per-event freshness (``traffic.freshness``: commit time of
the event's batch minus its event time, over every event of the step), the sender's lag behind its schedule, the
viewers' answers by status and their latency, and the dashboard's own count of panel answers (ran, cached, busy).
The heaviest panel is the one whose query took longest over 24 h after the first step (the widest range the
page offers). The target (issue 24): freshness p99 with viewers within 1.2x of the same round's step without.
Everything shares the machine's cores with whatever else runs on it (the load averages are recorded).
Results: bench/results/admission.json and admission.md.
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import shlex
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import orjson
from rtap_bench.drain import running_job, wait_committed
from rtap_bench.history import fill_history
from rtap_bench.procfs import STEAL_QUIET, cpu_jiffies, steal_share, tree_cpu_s
from rtap_bench.produce import private_broker
from rtap_bench.traffic import Sent, freshness, send

from rtap.dashboard.definition import load_definition
from rtap.http_json import retry_after_s
from rtap.ingest.topics import ensure_topics
from rtap.runtime.ports import free_ports
from rtap.runtime.process import die_with_parent
from rtap.settings import MetricsSettings, Settings, StreamSettings, child_environment
from rtap.warehouse import create_client
from rtap.warehouse.migrate import apply_migrations

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results"
DASHBOARD = "clickstream"
WIDEST_RANGE = timedelta(hours=24)
POLL_SLACK_S = 1.0  # app.js's POLL_SLACK_MS: a panel due within this long of a poll is asked in it
PAGE_RANGE = timedelta(hours=1)
TARGET_RATIO = 1.2
ALONE, VIEWERS, UNCONTROLLED = "alone", "viewers", "viewers, no admission"
# The admission control of issue 24 off: every request runs its own query, as many at once as arrive.
NO_ADMISSION = {
    "RTAP_DASHBOARD_CACHE_TTL_S": "0",
    "RTAP_DASHBOARD_MAX_CONCURRENT_QUERIES": "64",
    "RTAP_DASHBOARD_CLIENT_BURST": "1000000000",
}
START_TIMEOUT_S = 120.0
BATCHES = (
    "SELECT count(), avg(duration_ms), quantile(0.9)(duration_ms), max(duration_ms) FROM {db}.pipeline_batches FINAL "
    "WHERE started_at >= {began:DateTime64(3, 'UTC')} AND started_at < {ended:DateTime64(3, 'UTC')}"
)
DRAIN_TIMEOUT_S = 600.0
WARM_UP = (500.0, 5.0)  # events/s, seconds: the job's start-up and compiling first batch
# Then a minute at the measured rate, not measured: the first minutes of a job run slower (its JVM's JIT, Spark's
# code generation), which would favour whichever phase comes later.


@dataclass
class Load:
    """What the viewers saw: answers by status and their latencies (seconds)."""

    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, status: int, seconds: float) -> None:
        with self.lock:
            self.statuses[status] += 1
            self.latencies.append(seconds)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        pick = (lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)) if ordered else None
        return {
            "requests": len(ordered),
            "by_status": {str(code): n for code, n in sorted(self.statuses.items())},
            "latency_p50_ms": pick(0.5) if pick else None,
            "latency_p99_ms": pick(0.99) if pick else None,
        }


def _range(width: timedelta) -> dict[str, str]:
    end = datetime.now(UTC)
    return {"from": (end - width).isoformat(), "to": end.isoformat()}


class _Client:
    """One viewer's keep-alive connection from its own loopback address (all of 127/8 is the loopback interface),
    as each viewer has its own address in the field: the dashboard limits requests per client address.

    The standard library's client, not httpx: the viewers stand for browsers on other machines, yet share these
    two cores with the job, and httpx spent ~1.3 ms of CPU per request (9.6 CPU-s a minute for 20 viewers in
    the run of 2026-12-04 00:09), more than the dashboard's answer itself. Their CPU is still measured."""

    def __init__(self, url: str, address: str) -> None:
        parts = urlsplit(url)
        self._server = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._address = address
        self._connection: http.client.HTTPConnection | None = None

    def get(self, path: str, params: dict[str, str]) -> tuple[int, str | None, bytes]:
        """The status, Retry-After and body of one GET; a broken connection is opened anew for the next one."""
        if self._connection is None:
            host, port = self._server
            self._connection = http.client.HTTPConnection(host, port, timeout=60, source_address=(self._address, 0))
        try:
            self._connection.request("GET", f"{path}?{urlencode(params)}")
            response = self._connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        return response.status, response.getheader("retry-after"), body

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _viewer(
    url: str, panels: dict[str, int], stop: threading.Event, load: Load, offset_s: float, address: str, batched: bool
) -> None:
    """One open page: every panel on its own refresh interval, over the page's live hour. ``batched``: as the page
    asks since issue 24, the panels due within POLL_SLACK_S of a poll in one request (rtap.dashboard's app.js);
    else as it asked before, one request per panel."""
    due = dict.fromkeys(panels, time.monotonic() + offset_s)
    client = _Client(url, address)
    try:
        while not stop.is_set():
            now = time.monotonic()
            if batched:
                asked = [panel for panel in panels if due[panel] <= now + POLL_SLACK_S]
                waits = _ask_page(client, asked, load) if asked else {}
                after = time.monotonic()
                for panel in asked:
                    due[panel] = after + max(panels[panel], waits.get(panel, 0.0))
                stop.wait(max(0.05, min(due.values()) - POLL_SLACK_S - time.monotonic()))
                continue
            for panel, refresh_s in panels.items():
                if due[panel] <= now:
                    due[panel] = now + max(refresh_s, _ask(client, panel, PAGE_RANGE, load))  # as the page does
            stop.wait(max(0.05, min(due.values()) - time.monotonic()))
    finally:
        client.close()


def _ask_page(client: _Client, panels: list[str], load: Load) -> dict[str, float]:
    """One request for ``panels`` (``/api/panels?ids=``); the seconds each answer asks to wait before the next."""
    began = time.perf_counter()
    waits: dict[str, float] = {}
    try:
        status, retry_after, body = client.get("/api/panels", {"ids": ",".join(panels), **_range(PAGE_RANGE)})
        wait = retry_after_s(status, retry_after) or 0.0
        waits = dict.fromkeys(panels, wait)
        if status == 200 and b'"error"' in body:  # a panel refused alone (busy): its own Retry-After
            for panel, answer in orjson.loads(body)["panels"].items():
                if answer.get("error"):
                    waits[panel] = float(answer["error"].get("retry_after_s") or 0)
    except (OSError, http.client.HTTPException):
        status = 0
    load.record(status, time.perf_counter() - began)
    return waits


def _loop(url: str, panel: str, stop: threading.Event, load: Load, address: str) -> None:
    """A script asking the heaviest panel over the widest range, again as soon as it has an answer; told to
    wait (429 or 503 with Retry-After), it waits, as an HTTP client library does (a client deaf to that is a
    flood, which the network in front of rtap must stop, not rtap)."""
    client = _Client(url, address)
    try:
        while not stop.is_set():
            stop.wait(_ask(client, panel, WIDEST_RANGE, load))
    finally:
        client.close()


def _ask(client: _Client, panel: str, width: timedelta, load: Load) -> float:
    """One request for ``panel``; the seconds its answer asks to wait before the next (0: none)."""
    began = time.perf_counter()
    wait = 0.0
    try:
        status, retry_after, _ = client.get(f"/api/panels/{panel}", _range(width))
        wait = retry_after_s(status, retry_after) or 0.0
    except (OSError, http.client.HTTPException):
        status = 0
    load.record(status, time.perf_counter() - began)
    return wait


@contextmanager
def viewers(url: str, count: int, loops: int, heaviest: str, *, batched: bool) -> Iterator[Load]:
    panels = {p.id: p.refresh_seconds for d in load_definition().dashboards if d.id == DASHBOARD for p in d.panels}
    load, stop = Load(), threading.Event()
    threads = [
        threading.Thread(
            target=_viewer,
            args=(url, panels, stop, load, n * 2.0 / count, f"127.0.1.{n + 1}", batched),
            daemon=True,
        )
        for n in range(count)
    ]
    threads += [
        threading.Thread(target=_loop, args=(url, heaviest, stop, load, f"127.0.2.{n + 1}"), daemon=True)
        for n in range(loops)
    ]
    for thread in threads:
        thread.start()
    try:
        yield load
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=90)


@dataclass
class Dashboard:
    url: str
    metrics_url: str
    process: subprocess.Popen[bytes]

    def panel_queries(self) -> dict[str, float]:
        """rtap_dashboard_panel_queries_total by outcome, read from the dashboard's own metrics endpoint."""
        text = httpx.get(self.metrics_url, timeout=10).text
        counts = {"ran": 0.0, "cached": 0.0, "busy": 0.0}
        for line in text.splitlines():
            if line.startswith("rtap_dashboard_panel_queries_total{"):
                outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
                counts[outcome] = float(line.rsplit(" ", 1)[1])
        return counts


@contextmanager
def dashboard(settings: Settings, extra: dict[str, str]) -> Iterator[Dashboard]:
    """``rtap dashboard`` in its own process, reading through the job's socket."""
    port, metrics_port = free_ports(2)
    env = {**child_environment(settings), "RTAP_METRICS_DASHBOARD_PORT": str(metrics_port), **extra}
    log = (settings.data_dir / f"dashboard-{port}.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "rtap", "dashboard", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=settings.data_dir,
        start_new_session=True,
        preexec_fn=die_with_parent(),  # a bench stopped by a signal leaves no dashboard behind
    )
    served = Dashboard(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics", process)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if httpx.get(served.url + "/api/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the dashboard did not start (exit {process.poll()}); see {log.name}")
            time.sleep(0.5)
        yield served
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def heaviest_panel(board: Dashboard) -> tuple[str, dict[str, float]]:
    """The panel of the page whose query takes longest over the widest range (each asked once, in turn)."""
    timings: dict[str, float] = {}
    with httpx.Client(base_url=board.url, timeout=120) as client:
        for d in load_definition().dashboards:
            if d.id != DASHBOARD:
                continue
            for panel in d.panels:
                answer = client.get(f"/api/panels/{panel.id}", params=_range(WIDEST_RANGE))
                if answer.status_code == 200:
                    timings[panel.id] = float(answer.json()["elapsed_ms"])
    return max(timings, key=lambda p: timings[p]), timings


def phase_order(round_index: int) -> list[str]:
    phases = [ALONE, VIEWERS, UNCONTROLLED]
    shift = round_index % len(phases)
    return phases[shift:] + phases[:shift]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10_000.0, help="events/s the sender offers in every step")
    parser.add_argument("--step-seconds", type=float, default=60.0, help="< 90: the traffic's late events")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--loops", type=int, default=2, help="clients looping on the heaviest panel, 24 h")
    parser.add_argument("--history-minutes", type=int, default=60, help="stored traffic before the job starts")
    parser.add_argument("--jars-dir", type=Path, default=REPO_ROOT / "jars" / "lib")
    args = parser.parse_args(argv)
    if args.history_minutes < 0:
        parser.error("--history-minutes must be 0 or more")
    command = "python -m bench.bench_admission " + shlex.join(argv if argv is not None else sys.argv[1:])
    steps: list[dict[str, Any]] = []
    load_before = os.getloadavg()
    with private_broker("admission", args.jars_dir) as (_broker, base):
        settings = base.model_copy(
            update={
                "data_dir": base.data_dir / "job",
                "stream": StreamSettings(master="local[2]"),
                "metrics": MetricsSettings(port=0),
            }
        )
        settings.data_dir.mkdir(parents=True)
        ensure_topics(settings.kafka)
        bootstrap, topic = settings.kafka.bootstrap_servers, settings.kafka.topic
        watermark = settings.stream.watermark_delay_s
        total = 0
        if args.history_minutes:
            with create_client(settings) as writer:
                apply_migrations(writer)
                stored = fill_history(
                    writer, end=datetime.now(UTC), minutes=args.history_minutes, rate=round(args.rate)
                )
            print(f"stored {stored:,} events of history", flush=True)
        with running_job(settings) as job:
            warm = send(bootstrap, topic, WARM_UP[0], WARM_UP[1], f"warm{uuid.uuid4().hex[:6]}", 0, watermark)
            total += warm.sent
            wait_committed(settings, job, total, DRAIN_TIMEOUT_S)
            hot = send(bootstrap, topic, args.rate, args.step_seconds, f"hot{uuid.uuid4().hex[:6]}", 99, watermark)
            total += hot.sent
            wait_committed(settings, job, total, DRAIN_TIMEOUT_S)
            with dashboard(settings, {}) as controlled, dashboard(settings, NO_ADMISSION) as uncontrolled:
                boards = {VIEWERS: controlled, UNCONTROLLED: uncontrolled}
                heaviest: tuple[str, dict[str, float]] | None = None
                for round_index in range(args.rounds):
                    for phase in phase_order(round_index):
                        board = boards.get(phase)
                        # After the first step (alone): the panels then read the data a step brings.
                        if heaviest is None and board is not None:
                            heaviest = heaviest_panel(controlled)
                            print(f"heaviest panel over 24 h: {heaviest[0]} ({heaviest[1]})", flush=True)
                        step = run_step(args, settings, job, total, phase, round_index, board, heaviest)
                        total = step.pop("_total")
                        steps.append(step)
                        print(orjson.dumps(step).decode(), flush=True)
    result = {
        "command": command,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version()},
        "load_average_before": [round(x, 1) for x in load_before],
        "load_average_after": [round(x, 1) for x in os.getloadavg()],
        "rate": args.rate,
        "step_seconds": args.step_seconds,
        "viewers": args.viewers,
        "loops": args.loops,
        "history_minutes": args.history_minutes,
        "heaviest_panel": heaviest[0] if heaviest else None,
        "heaviest_panel_timings_ms": heaviest[1] if heaviest else None,
        "steps": steps,
        "summary": summarise(steps),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "admission.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    (RESULTS / "admission.md").write_text(report(result), encoding="utf-8")
    print(report(result))


def run_step(
    args: argparse.Namespace,
    settings: Settings,
    job: subprocess.Popen[bytes],
    total: int,
    phase: str,
    round_index: int,
    board: Dashboard | None,
    heaviest: tuple[str, dict[str, float]] | None,
) -> dict[str, Any]:
    run = f"adm{uuid.uuid4().hex[:6]}"
    seed = 1 + round_index * 3 + [ALONE, VIEWERS, UNCONTROLLED].index(phase)
    load_at_start = os.getloadavg()[0]
    began = datetime.now(UTC)
    jiffies_before = cpu_jiffies()
    before = board.panel_queries() if board else None
    # Where the cores went: the job (its Python and JVM), the dashboard under load, the viewers (this process).
    cpu_before = (tree_cpu_s(job.pid), tree_cpu_s(board.process.pid) if board else 0.0, time.process_time())
    # The page as shipped asks its due panels in one request; the page before issue 24 asked one per panel.
    batched = phase == VIEWERS
    page = viewers(board.url, args.viewers, args.loops, heaviest[0], batched=batched) if board and heaviest else None
    with page or _nothing() as load:
        sent: Sent = send(
            settings.kafka.bootstrap_servers,
            settings.kafka.topic,
            args.rate,
            args.step_seconds,
            run,
            seed,  # each step its own events: the same seed again would send copies (counted duplicates)
            settings.stream.watermark_delay_s,
        )
    after = board.panel_queries() if board else None
    ended = datetime.now(UTC)
    steal = steal_share(jiffies_before, cpu_jiffies())
    cpu_after = (tree_cpu_s(job.pid), tree_cpu_s(board.process.pid) if board else 0.0, time.process_time())
    cpu = {
        name: round(b - a, 1) for name, a, b in zip(("job", "dashboard", "viewers"), cpu_before, cpu_after, strict=True)
    }
    total += sent.sent
    wait_committed(settings, job, total, DRAIN_TIMEOUT_S)
    with create_client(settings, readonly=True) as client:
        fresh = freshness(client, run, sent)
        count, mean, p90, worst = client.query_rows(BATCHES, parameters={"began": began, "ended": ended})[0]
    step: dict[str, Any] = {
        "round": round_index + 1,
        "phase": phase,
        "sent": asdict(sent),
        "achieved_rate": round(sent.achieved_rate),
        "freshness": fresh,
        "load_average_1m_at_start": round(load_at_start, 1),
        "steal": round(steal, 3),
        "cpu_s": cpu,
        # The job's batches that started while the step sent: how the viewers changed its work.
        "batches": {
            "count": count,
            "mean_ms": round(mean) if count else 0,  # avg() of no rows is nan
            "p90_ms": round(p90) if count else 0,
            "max_ms": worst,
        },
        "_total": total,
    }
    if load is not None and before is not None and after is not None:
        step["viewers"] = load.summary()
        step["panel_queries"] = {k: int(after[k] - before[k]) for k in after}
    return step


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def summarise(steps: list[dict[str, Any]]) -> dict[str, Any]:
    by_round: dict[int, dict[str, float | None]] = {}
    for step in steps:
        by_round.setdefault(step["round"], {})[step["phase"]] = step["freshness"]["p99_s"]
    ratios: dict[str, list[float]] = {VIEWERS: [], UNCONTROLLED: []}
    for phases in by_round.values():
        alone = phases.get(ALONE)
        for phase in ratios:
            value = phases.get(phase)
            if alone and value is not None:
                ratios[phase].append(round(value / alone, 2))
    median = {phase: round(statistics.median(values), 2) if values else None for phase, values in ratios.items()}
    controlled = median[VIEWERS]
    return {
        "p99_ratio_per_round": ratios,
        "p99_ratio_median": median,
        "target_ratio": TARGET_RATIO,
        "met": controlled is not None and controlled <= TARGET_RATIO,
    }


def report(result: dict[str, Any]) -> str:
    summary = result["summary"]
    lines = [
        "# Admission control: the job's freshness with dashboard viewers beside it",
        "",
        f"`{result['command']}` at {result['at']}: {result['rate']:,.0f} events/s offered, steps of "
        f"{result['step_seconds']:.0f} s, {result['viewers']} page viewers plus {result['loops']} clients looping on "
        f"the heaviest panel (`{result['heaviest_panel']}`) over 24 h; the warehouse held "
        f"{result.get('history_minutes', 0)} minutes of traffic at that rate before the job started. "
        f"{result['machine']['cpus']} cores, shared: load "
        f"average {result['load_average_before'][0]} before, {result['load_average_after'][0]} after.",
        "",
        _shared_machine_note(result),
        "",
        f"**Target**: per-event freshness p99 with viewers within {summary['target_ratio']}x of the same round's step "
        f"without. Median ratio with admission control: **{summary['p99_ratio_median'][VIEWERS]}** "
        f"({'met' if summary['met'] else 'not met'}); without it (the dashboard before issue 24): "
        f"{summary['p99_ratio_median'][UNCONTROLLED]}. Per round: {summary['p99_ratio_per_round']}.",
        "",
        "| round | phase | achieved events/s | sender behind (s) | freshness p50 / p99 / max (s) | viewer answers "
        "(by status) | viewer latency p50 / p99 (ms) | panel queries ran / cached / busy | CPU s: job / dashboard / "
        "viewers | job batches: count, mean / p90 (ms) | load 1m | steal |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for step in result["steps"]:
        fresh = step["freshness"]
        viewers_seen = step.get("viewers") or {}
        queries = step.get("panel_queries") or {}
        lines.append(
            f"| {step['round']} | {step['phase']} | {step['achieved_rate']:,} | "
            f"{step['sent']['producer_max_behind_s']} | "
            f"{_s(fresh['p50_s'])} / {_s(fresh['p99_s'])} / {_s(fresh['max_s'])} | "
            f"{viewers_seen.get('requests', '-')} {viewers_seen.get('by_status', '')} | "
            f"{viewers_seen.get('latency_p50_ms', '-')} / {viewers_seen.get('latency_p99_ms', '-')} | "
            f"{queries.get('ran', '-')} / {queries.get('cached', '-')} / {queries.get('busy', '-')} | "
            f"{step['cpu_s']['job']} / {step['cpu_s']['dashboard']} / {step['cpu_s']['viewers']} | "
            f"{_batches(step)} | {step['load_average_1m_at_start']} | {step.get('steal', 0.0):.0%} |"
        )
    timings = result["heaviest_panel_timings_ms"] or {}
    lines += [
        "",
        "Panels of the page over 24 h, one query each after the first step (ms): "
        + ", ".join(f"{p} {t:g}" for p, t in sorted(timings.items(), key=lambda item: -item[1])),
        "",
    ]
    return "\n".join(lines)


def _shared_machine_note(result: dict[str, Any]) -> str:
    """Whether others' work on the machine outweighed the load under test (then no ratio means much)."""
    cores = result["machine"]["cpus"]
    loads = [step["load_average_1m_at_start"] for step in result["steps"]]
    steals = [step.get("steal", 0.0) for step in result["steps"]]
    busy = [load for load in loads if load > cores]
    stolen = [steal for steal in steals if steal > STEAL_QUIET]
    notes = []
    if busy:
        notes.append(
            f"at {len(busy)} of {len(loads)} steps the machine's 1-minute load was already above its {cores} cores "
            f"when the step began (up to {max(loads)}): other work shared the cores"
        )
    if stolen:
        notes.append(
            f"at {len(stolen)} of {len(steals)} steps the hypervisor gave more than {STEAL_QUIET:.0%} of the CPU time "
            f"to other tenants (steal up to {max(stolen):.0%}): the machine had fewer cores than it says"
        )
    if not notes:
        return (
            f"The machine was otherwise quiet: the 1-minute load stayed within its {cores} cores and steal under "
            f"{STEAL_QUIET:.0%} at every step."
        )
    return (
        f"**Caveat**: {'; '.join(notes)}. The job's CPU time per step (below) shows how much it got; under such "
        "load the steps differ more by what else ran than by the phase."
    )


def _batches(step: dict[str, Any]) -> str:
    batches = step.get("batches")  # results of runs before it was measured have none
    return f"{batches['count']}, {batches['mean_ms']:,} / {batches['p90_ms']:,}" if batches else "-"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    main()
