"""Soak: realistic traffic against ``rtap up`` for half an hour or more. Is the job as fresh in its last minute
as in its second, across an hour boundary, with memory that stays flat?

A 20 s step cannot show per-batch work that grows with the tables (issue 22: a duplicate lookup that read the
whole current hour made freshness p99 climb from 1.1 s to 2.1 s over 15 minutes, then drop after the hour).
So: one ``rtap up --no-generator`` (``rtap_bench.stack``), the warm-up and the lead-in (``rtap_bench.sustain``),
then, unless a rate is given, the same
search as ``rtap bench``'s live phase (20 s steps, ``rtap_bench.sustain``) and :data:`SEARCH_SHARE` of the
highest rate it held; then the sender (``rtap_bench.traffic``, the same code and dirt as every live
measurement) offers that rate open loop for the whole duration, in one run.

Per minute of the run (minute k = the events due in [start + 60 k, start + 60 (k + 1))): per-event freshness
(``rtap_bench.traffic.window_freshness``: the commit time of the event's batch minus its event_time; p50, p99, max),
the batches that finished in it from ``pipeline_batches`` (count, mean and max ``duration_ms``, max Kafka lag), the
stack's RSS (the whole ``rtap up`` tree, sampled every :data:`SAMPLE_S`), and how far the sender fell behind its
schedule. An hour boundary inside the run is marked on its minute: with ``cross`` the run is started so that one
falls at least :data:`HOUR_MARGIN_S` (a sixth of a shorter run) inside it (waiting if needed), with ``report`` it
starts at once and the report says where one fell, if any.

Passed (:func:`freshness_verdict`) when every minute's p99 <= :data:`MINUTE_P99_LIMIT_S` and the last minute's p99
is at most :data:`LAST_OVER_SECOND_LIMIT` x the second's (the first minute carries the change of rate); memory is
judged as the earlier soak did (:func:`flatness`); and the whole run is reconciled exactly against what was sent.
"""

from __future__ import annotations

import math
import re
import shutil
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from rtap.errors import ConfigError
from rtap.settings import Settings
from rtap_bench.procfs import cpu_jiffies, rss_mb, steal_share, tree_peak_rss_mb, tree_rss_mb
from rtap_bench.report import lead_in_sentence
from rtap_bench.stack import running_stack, stack_settings
from rtap_bench.sustain import (
    WARM_UP_RATE,
    WARM_UP_S,
    LiveJob,
    reconcile_totals,
    search_steps,
    search_summary,
)
from rtap_bench.traffic import Sender, Sent, window_freshness

MINUTE_P99_LIMIT_S = 3.0
LAST_OVER_SECOND_LIMIT = 1.5
SEARCH_SHARE = 0.8
SAMPLE_S = 5.0
HOUR_MARGIN_S = 300.0  # an hour boundary at least this far from either end of the run (``cross``)
MEMORY_TOLERANCE = 0.10
# The sender prepares every send before its clock starts (1-2 s per million): a run planned to start at a given
# time is handed to it this much earlier.
PREPARE_S_PER_SEND = 2e-6
PREPARE_S = 15.0

HourMode = Literal["cross", "report"]

_MINUTE_BATCHES = """
SELECT intDiv(toUnixTimestamp64Milli(finished_at) - {start:Int64}, 60000) AS minute,
       count(), avg(duration_ms), max(duration_ms), sum(input_rows), max(kafka_lag)
FROM {db}.pipeline_batches FINAL
WHERE finished_at >= fromUnixTimestamp64Milli({start:Int64}) AND finished_at < fromUnixTimestamp64Milli({end:Int64})
GROUP BY minute ORDER BY minute
"""


@dataclass(frozen=True)
class SoakPlan:
    rate: float | None  # None: SEARCH_SHARE of the highest rate the search held
    seconds: float  # whole minutes
    search_rates: tuple[float, ...]
    search_steps: int
    step_s: float
    hour: HourMode
    timeout_s: float  # how long the job may take to commit what was sent, after each run
    jars_dir: Path
    master: str | None  # Spark master; None: rtap's default (what `rtap up` runs)
    lead_in_s: float  # unjudged traffic at LEAD_IN_RATE after the warm-up (rtap_bench.sustain); 0: none


# What a failed soak leaves behind before its private data directory goes: the stack's own log (the job, Spark,
# the collector) and the broker's, relative to that directory.
FAILURE_LOGS = ("logs/*.log", "kafka/kafka.log*")


def keep_logs(data_dir: Path, to: Path) -> list[Path]:
    """Copy the stack's logs (:data:`FAILURE_LOGS`) from ``data_dir`` into ``to``; the copies. Why: a soak that
    fails after many minutes (a sender whose queue stayed full, a stack that exited) runs in a temporary directory,
    and without its logs the cause is gone with it."""
    kept = []
    for pattern in FAILURE_LOGS:
        for path in sorted(data_dir.glob(pattern)):
            target = to / path.relative_to(data_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            kept.append(Path(shutil.copy2(path, target)))
    return kept


def parse_duration(text: str) -> float:
    """``30m``, ``2h``, ``180s`` or plain seconds -> seconds, a whole number of minutes of at least two."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if match is None:
        raise ConfigError(f"--duration: a number with an optional unit s, m or h (e.g. 30m, 2h), got {text!r}")
    seconds = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]
    if seconds < 120 or seconds % 60:
        raise ConfigError(f"--duration: whole minutes, at least 2 (a second and a last one), got {text!r}")
    return seconds


def soak_rate(highest_held: float | None, share: float = SEARCH_SHARE) -> float:
    """The soak's rate from the search's highest held rate."""
    if highest_held is None:
        raise ConfigError("the search held no rate, so there is no rate to soak at: give one with --rate")
    return share * highest_held


def hour_margin(seconds: float) -> float:
    """How far inside a run of ``seconds`` its hour boundary must fall: HOUR_MARGIN_S, or a sixth of a short run."""
    return min(HOUR_MARGIN_S, seconds / 6)


def plan_start(now: float, seconds: float, margin: float = HOUR_MARGIN_S) -> float:
    """The earliest start at or after ``now`` such that an hour boundary falls at least ``margin`` inside the
    run [start, start + seconds]."""
    if seconds < 2 * margin:
        raise ConfigError(f"a run of {seconds:.0f} s cannot have an hour boundary {margin:.0f} s from both ends")
    boundary = math.ceil((now + margin) / 3600) * 3600
    return max(now, boundary - seconds + margin)


def hour_boundaries(started: float, seconds: float) -> list[float]:
    """Every full hour (epoch s) strictly inside [started, started + seconds)."""
    first = math.floor(started / 3600) * 3600 + 3600
    return [float(h) for h in range(int(first), math.ceil(started + seconds), 3600)]


def minute_rows(
    started: float,
    minutes: int,
    freshness: list[dict[str, Any]],
    batches: dict[int, tuple[int, float, float, int, int]],
    samples: list[dict[str, Any]],
    behind_by_minute: list[float],
) -> list[dict[str, Any]]:
    """The per-minute table: ``freshness[k]`` (``window_freshness`` of minute k), ``batches[k]`` (count, mean ms,
    max ms, input rows, max lag of the batches that finished in it), the RSS samples (``t``: epoch s) in it."""
    boundaries = hour_boundaries(started, minutes * 60)
    rows = []
    for k in range(minutes):
        begin = started + 60 * k
        fresh = freshness[k]
        count, mean_ms, max_ms, rows_in, lag = batches.get(k, (0, 0.0, 0.0, 0, 0))
        stack = [s["stack_mb"] for s in samples if begin <= s["t"] < begin + 60 and s["stack_mb"] is not None]
        ticks = [s["cpu_jiffies"] for s in samples if begin <= s["t"] < begin + 60 and "cpu_jiffies" in s]
        rows.append(
            {
                "minute": k + 1,
                "start": _utc(begin),
                "hour_boundary": any(begin <= b < begin + 60 for b in boundaries),
                "events": fresh["events"],
                "p50_s": fresh["p50_s"],
                "p99_s": fresh["p99_s"],
                "max_s": fresh["max_s"],
                "batches": count,
                "batch_mean_ms": mean_ms if count else None,
                "batch_max_ms": max_ms if count else None,
                "input_rows": rows_in,
                "max_kafka_lag": lag if count else None,
                "stack_rss_mb": max(stack) if stack else None,
                # The share of the machine's CPU time another tenant of the host took (steal) in the minute.
                "steal": round(steal_share(ticks[0], ticks[-1]), 3) if len(ticks) > 1 else None,
                "sender_behind_s": behind_by_minute[k] if k < len(behind_by_minute) else None,
            }
        )
    return rows


def _utc(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="seconds")


def freshness_verdict(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Every minute's p99 <= MINUTE_P99_LIMIT_S, and the last minute's p99 <= LAST_OVER_SECOND_LIMIT x the second's."""
    reasons = []
    p99s = [row["p99_s"] for row in rows]
    for row in rows:
        if row["p99_s"] is None:
            reasons.append(f"minute {row['minute']}: no event stored")
        elif row["p99_s"] > MINUTE_P99_LIMIT_S:
            reasons.append(f"minute {row['minute']}: p99 {row['p99_s']:.2f} s > {MINUTE_P99_LIMIT_S:.0f} s")
    ratio = None
    if len(rows) < 2:
        reasons.append("fewer than two minutes: no second minute to compare the last with")
    elif p99s[1] and p99s[-1] is not None:
        ratio = p99s[-1] / p99s[1]
        if ratio > LAST_OVER_SECOND_LIMIT:
            reasons.append(
                f"the last minute's p99 {p99s[-1]:.2f} s is {ratio:.2f} x the second's {p99s[1]:.2f} s "
                f"(> {LAST_OVER_SECOND_LIMIT})"
            )
    worst = max((row for row in rows if row["p99_s"] is not None), key=lambda row: row["p99_s"], default=None)
    return {
        "passed": not reasons,
        "reasons": reasons,
        "last_over_second": ratio,
        "worst_minute": None if worst is None else worst["minute"],
        "worst_p99_s": None if worst is None else worst["p99_s"],
    }


def flatness(samples: list[float], tolerance: float = MEMORY_TOLERANCE) -> dict[str, Any] | None:
    """Memory is flat when the mean RSS of the last third of the samples is at most ``tolerance`` above the mean
    of the middle third (the first third is warm-up: the JVM grows its heap, caches fill). None: too few samples."""
    third = len(samples) // 3
    if third == 0:
        return None
    first, middle, last = samples[:third], samples[third : 2 * third], samples[2 * third :]
    middle_mean, last_mean = sum(middle) / len(middle), sum(last) / len(last)
    growth = last_mean / middle_mean - 1
    return {
        "samples": len(samples),
        "first_third_mean_mb": round(sum(first) / len(first), 1),
        "middle_third_mean_mb": round(middle_mean, 1),
        "last_third_mean_mb": round(last_mean, 1),
        "max_mb": round(max(samples), 1),
        "last_vs_middle": round(growth, 4),
        "flat": growth <= tolerance,
    }


class _Sampler:
    """RSS of the stack's process tree and of the sender, and the machine's CPU ticks (for its steal), every
    SAMPLE_S, on a thread, while the sender runs."""

    def __init__(self, stack_pid: int, sender_pid: int) -> None:
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(stack_pid, sender_pid), daemon=True)
        self._thread.start()

    def _run(self, stack_pid: int, sender_pid: int) -> None:
        while not self._stop.wait(SAMPLE_S):
            self.samples.append(
                {
                    "t": time.time(),
                    "stack_mb": tree_rss_mb(stack_pid),
                    "sender_mb": rss_mb(sender_pid),
                    "cpu_jiffies": cpu_jiffies(),
                }
            )

    def stop(self) -> list[dict[str, Any]]:
        self._stop.set()
        self._thread.join()
        return self.samples


def _planned_start(plan: SoakPlan, rate: float) -> float | None:
    """When the run must start for an hour boundary to fall inside it (``cross``); None: as soon as it is ready."""
    if plan.hour != "cross":
        return None
    ready = time.time() + PREPARE_S + PREPARE_S_PER_SEND * rate * plan.seconds
    start = plan_start(ready, plan.seconds, hour_margin(plan.seconds))
    return start if start > ready else None


def run_soak(plan: SoakPlan, data_dir: Path) -> dict[str, Any]:
    """The whole soak on a private ``rtap up`` in ``data_dir`` (module docstring); the result document."""
    settings = stack_settings(data_dir, plan.jars_dir, plan.master, "soak")
    launched = time.time()
    search: dict[str, Any] | None = None
    with running_stack(settings, plan.timeout_s) as process:
        live = LiveJob(settings, process, plan.timeout_s)
        live.offer(WARM_UP_RATE, WARM_UP_S)
        startup_s = time.time() - launched
        lead_in = live.lead_in(plan.lead_in_s)
        if plan.rate is None:
            steps, found = search_steps(live, list(plan.search_rates), plan.step_s, plan.search_steps)
            search = {**search_summary(found), "step_s": plan.step_s, "steps": steps}
            if found.highest_held is None:  # the search's figures are the result
                return {
                    "stack": "rtap up --no-generator",
                    "spark_master": settings.stream.master,
                    "seconds": plan.seconds,
                    "search": search,
                    "error": "the search held no rate, so there is no rate to soak at (give one with --rate)",
                    "passed": False,
                }
            rate = soak_rate(found.highest_held)
        else:
            rate = plan.rate
        start_at = _planned_start(plan, rate)
        run = live.run_name()
        kafka = settings.kafka
        watermark = settings.stream.watermark_delay_s
        seed = len(live.sends)
        with Sender(kafka.bootstrap_servers, kafka.topic, rate, plan.seconds, run, seed, watermark, start_at) as sender:
            sampler = _Sampler(process.pid, sender.process.pid)
            try:
                sent = sender.result()
            finally:
                samples = sampler.stop()
        live.sent(sent)  # waits until the job committed every record of the run
        peak = tree_peak_rss_mb(process.pid)
    minutes = _minutes(settings, run, sent, samples)
    loaded = [s for s in samples if sent.started <= s["t"] <= sent.ended]  # not while the sender prepared or waited
    stack_memory = flatness([s["stack_mb"] for s in loaded if s["stack_mb"] is not None])
    sender_memory = flatness([s["sender_mb"] for s in loaded if s["sender_mb"] is not None])
    reconciliation = reconcile_totals(settings, live.sends)
    disk = disk_footprint(settings, sum(s.sent for s in live.sends))
    verdict = freshness_verdict(minutes)
    missing = sent.valid - sum(row["events"] for row in minutes)
    return {
        "stack": "rtap up --no-generator",
        "spark_master": settings.stream.master,
        "rate": rate,
        "rate_from": "search" if plan.rate is None else "given",
        "seconds": plan.seconds,
        "hour_mode": plan.hour,
        "started": _utc(sent.started),
        "hour_boundaries": [
            {"at": _utc(b), "minute": int((b - sent.started) // 60) + 1}
            for b in hour_boundaries(sent.started, plan.seconds)
        ],
        "startup_s": startup_s,
        "lead_in": lead_in,
        "search": search,
        "sent": {
            "records": sent.sent,
            "valid": sent.valid,
            "achieved_rate": sent.achieved_rate,
            "producer_max_behind_s": sent.producer_max_behind_s,
        },
        "minutes": minutes,
        "freshness": verdict,
        "events_missing": missing,
        "memory": {
            "rule": f"mean RSS of the last third <= (1 + {MEMORY_TOLERANCE}) x the middle third's",
            "stack": stack_memory,
            "sender": sender_memory,
        },
        "peak_rss_mb": peak,
        "disk": disk,
        "reconciliation": reconciliation,
        "passed": verdict["passed"]
        and missing == 0
        and reconciliation["ok"]
        and stack_memory is not None
        and stack_memory["flat"],
        "samples": samples,
    }


# What the warehouse keeps per record, by table: compressed bytes of its active parts (after the stack stopped).
_TABLE_BYTES = """
SELECT table, sum(rows), sum(data_compressed_bytes), sum(data_uncompressed_bytes)
FROM system.parts WHERE database = {database:String} AND active GROUP BY table ORDER BY table
"""


def _tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def disk_footprint(settings: Settings, records: int) -> dict[str, Any]:
    """Disk per record sent, for sizing: Kafka's log directory (every topic, replication 1) and the warehouse
    (its directory, and the compressed bytes of each table's parts), over the records of every run."""
    from rtap.warehouse import create_client

    with create_client(settings) as client:
        rows = client.query_rows(_TABLE_BYTES, parameters={"database": settings.warehouse.database})
    tables = {
        str(table): {"rows": int(n), "compressed_bytes": int(packed), "uncompressed_bytes": int(raw)}
        for table, n, packed, raw in rows
    }
    kafka, warehouse = _tree_bytes(settings.paths.kafka), _tree_bytes(settings.paths.chdb)
    per = max(records, 1)
    return {
        "records": records,
        "kafka_bytes": kafka,
        "warehouse_bytes": warehouse,
        "kafka_bytes_per_record": kafka / per,
        "warehouse_bytes_per_record": warehouse / per,
        "tables": tables,
    }


def _disk_lines(disk: dict[str, Any] | None) -> list[str]:
    """The disk paragraph of the report (for sizing: docs/operating.md)."""
    if not disk:
        return []
    tables = ", ".join(
        f"{name} {t['compressed_bytes'] / max(disk['records'], 1):.0f}"
        for name, t in sorted(disk["tables"].items(), key=lambda item: -item[1]["compressed_bytes"])[:5]
    )
    return [
        f"Disk per record sent ({disk['records']:,} records, after the stack stopped): Kafka's log directory "
        f"{disk['kafka_bytes_per_record']:.0f} bytes (replication 1, before retention deletes anything), the "
        f"warehouse's directory {disk['warehouse_bytes_per_record']:.0f} bytes; compressed bytes per record of the "
        f"largest tables: {tables}.",
        "",
    ]


def _minutes(settings: Settings, run: str, sent: Sent, samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-minute freshness and batch figures, read once the stack has stopped (nothing else on the warehouse)."""
    from rtap.warehouse import create_client

    count = round(sent.seconds / 60)
    start_ms = int(sent.started * 1000)
    with create_client(settings) as client:
        # The last minute reaches a second past the run, as a step's window does: an event due in its last
        # millisecond is stamped to the nearest one.
        freshness = [
            window_freshness(
                client, run, sent.started + 60 * k, sent.started + 60 * (k + 1) + (1.0 if k == count - 1 else 0.0)
            )
            for k in range(count)
        ]
        rows = client.query_rows(_MINUTE_BATCHES, parameters={"start": start_ms, "end": start_ms + count * 60_000})
    batches = {
        int(k): (int(n), float(mean), float(top), int(inputs), int(lag)) for k, n, mean, top, inputs, lag in rows
    }
    return minute_rows(sent.started, count, freshness, batches, samples, sent.behind_by_minute_s)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def _n(value: float | None, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:,.0f}{unit}"


def _search(search: dict[str, Any]) -> str:
    return f"{search['step_s']:.0f} s steps: " + ", ".join(
        f"{s['rate']:,.0f} {s['outcome']} (p99 {_s(s['freshness']['p99_s'])})" for s in search["steps"]
    )


def markdown(result: dict[str, Any]) -> str:
    machine = result["machine"]
    head = [
        f"# Soak: {result['seconds'] / 60:.0f} minutes of realistic traffic against `rtap up`",
        "",
        f"Command: `{result['command']}` ({result['when']}; {machine['cpus']} CPUs shared with other work; "
        f"1-min load average {machine['load_average_1m_before']:.1f} before, "
        f"{machine['load_average_1m_after']:.1f} after).",
        "",
    ]
    if "error" in result:
        search = f" The search ({_search(result['search'])})." if result.get("search") else ""
        return "\n".join([*head, f"Not run: {result['error']}.{search}", "", "Soak: **FAILED**.", ""])
    fresh, sent = result["freshness"], result["sent"]
    if result["rate_from"] == "search":
        search = result["search"]
        origin = (
            f"{SEARCH_SHARE:.0%} of {_n(search['sustainable_records_per_s'])} events/s, the highest rate this run's "
            f"search held ({_search(search)})"
        )
    else:
        origin = "given"
    boundaries = result["hour_boundaries"]
    where = "; ".join(f"{b['at']} in minute {b['minute']}" for b in boundaries) if boundaries else "none inside the run"
    lines = [
        *head,
        f"`{result['stack']}` (Spark `{result['spark_master']}`, rtap's default stream settings), the sender of "
        f"every live measurement (`rtap_bench.traffic`: ~1% re-sends, ~0.5% truncated JSON, ~0.3% late) at "
        f"**{result['rate']:,.0f} events/s** ({origin}) from {result['started']}: {sent['records']:,} records, "
        f"the sender achieved {sent['achieved_rate']:,.0f} events/s and fell at most "
        f"{sent['producer_max_behind_s']:.2f} s behind its schedule. Hour boundaries: {where}."
        f"{lead_in_sentence(result.get('lead_in'))}",
        "",
        "Per minute of the run: per-event freshness (commit time of the event's batch minus its event_time, over "
        "the events due in that minute), the batches that finished in it (`pipeline_batches.duration_ms`), the "
        "largest RSS of the whole `rtap up` tree sampled in it, how far the sender fell behind, and the share of the "
        "machine's CPU time the hypervisor gave to other tenants (steal: a shared host's slow minutes).",
        "",
        "| minute | from (UTC) | events | p50 | p99 | max | batches | mean batch | max batch | max Kafka lag "
        "| stack RSS | sender behind | steal |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["minutes"]:
        hour = " (hour)" if row["hour_boundary"] else ""
        lines.append(
            f"| {row['minute']}{hour} | {row['start'][11:19]} | {row['events']:,} | {_s(row['p50_s'])} | "
            f"{_s(row['p99_s'])} | {_s(row['max_s'])} | {row['batches']} | {_n(row['batch_mean_ms'], ' ms')} | "
            f"{_n(row['batch_max_ms'], ' ms')} | {_n(row['max_kafka_lag'])} | {_n(row['stack_rss_mb'], ' MiB')} | "
            f"{_s(row['sender_behind_s'])} | {_pct(row.get('steal'))} |"
        )
    memory = result["memory"]["stack"]
    memory_text = (
        "too few samples"
        if memory is None
        else f"{memory['middle_third_mean_mb']:,.0f} -> {memory['last_third_mean_mb']:,.0f} MiB "
        f"({memory['last_vs_middle']:+.1%}): {'flat' if memory['flat'] else '**not flat**'}"
    )
    recon = result["reconciliation"]
    ratio = fresh["last_over_second"]
    lines += [
        "",
        f"Freshness: every minute's p99 <= {MINUTE_P99_LIMIT_S:.0f} s and the last minute's p99 <= "
        f"{LAST_OVER_SECOND_LIMIT} x the second's: **{'passed' if fresh['passed'] else 'FAILED'}** (worst minute "
        f"{fresh['worst_minute']}: p99 {_s(fresh['worst_p99_s'])}; last / second "
        f"{'n/a' if ratio is None else f'{ratio:.2f}'})"
        + ("" if fresh["passed"] else f": {'; '.join(fresh['reasons'])}")
        + ".",
        "",
        f"Memory of the stack ({result['memory']['rule']}): {memory_text}; peak {_n(result['peak_rss_mb'], ' MiB')}.",
        "",
        *_disk_lines(result.get("disk")),
        f"Reconciliation of everything sent (search and soak) against the warehouse: "
        f"**{'passed' if recon['ok'] else 'FAILED'}**"
        + ("" if recon["ok"] else f" ({'; '.join(recon['differences'])})")
        + f"; valid events of the soak not found per minute: {result['events_missing']}.",
        "",
        f"Soak: **{'passed' if result['passed'] else 'FAILED'}**.",
        "",
    ]
    return "\n".join(lines)
