"""The result of a run as files: JSON (everything), a short markdown report and a PNG bar chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from rtap.bench.sustain import WARM_UP_RECORDS

ROWS = (
    ("B1", "B1_raw_produce", "raw confluent-kafka produce (pre-encoded)"),
    ("P1", "P1_rtap_produce", "rtap produce (generate + encode + produce)"),
    ("B2", "B2_raw_consume", "raw confluent-kafka consume"),
    ("B3", "B3_spark_passthrough", "Spark Kafka source -> noop sink"),
    ("B4", "B4_warehouse_insert", "chDB insert_arrow into a copy of events"),
    ("P", "P_rtap_job", "full rtap job (first batch -> all committed)"),
    ("K", "K_kafka_engine", "chDB Kafka engine + materialized view"),
)


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


PHASES = (
    ("latestOffset", "latestOffset: ask Kafka for the end offsets"),
    ("getBatch", "getBatch: define the batch's Kafka ranges"),
    ("queryPlanning", "queryPlanning"),
    ("addBatch", "addBatch: the whole foreachBatch call"),
    ("foreach_spark", "- of which Spark: parse, validate, classify, collect to Arrow"),
    ("foreach_warehouse", "- of which warehouse: dedup lookup, inserts, window rewrites, commit row"),
    ("walCommit", "walCommit: offsets to the checkpoint"),
    ("commitOffsets", "commitOffsets: commit log"),
    ("triggerExecution", "triggerExecution: the whole trigger"),
)


def _sustained(result: dict[str, Any]) -> list[str]:
    live = result.get("P_sustained")
    if not live:
        return []
    if "error" in live:
        return ["## P sustained: open-loop load against a running job", "", f"Failed: `{live['error']}`", ""]
    rule = live["rule"]
    lines = [
        "## P sustained: open-loop load against a running job",
        "",
        f"Each step offers a fixed rate for {live['step_s']:.0f} s (`produce_run`'s open-loop schedule, events "
        "stamped at their intended send time); the job drains any backlog between steps. A rate is "
        f"**sustainable** when, over the {rule['judged']}: the producer kept its schedule (lag < "
        f"{rule['producer_lag_limit_s']:.0f} s), Kafka lag did not grow (least-squares slope < "
        f"{rule['lag_growth_limit_of_rate']:.0%} of the rate) and batch freshness p99 < "
        f"{rule['batch_freshness_p99_limit_s']:.0f} s. Start: half of P's drain rate; then double / halve / "
        f"bisect. Job start-up (launch -> warm-up committed): {live['startup_s']:.0f} s.",
        "",
        "| step | offered events/s | records | batches judged | lag growth records/s | batch freshness p50 / p99 "
        "| verdict |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for i, step in enumerate(live["steps"], 1):
        growth = step["lag_growth_per_s"]
        lines.append(
            f"| {i} | {step['rate']:,.0f} | {step['records']:,} | {step['batches']} | "
            f"{'n/a' if growth is None else f'{growth:,.0f}'} | {_seconds(step['freshness_p50_s'])} / "
            f"{_seconds(step['freshness_p99_s'])} | {'held' if step['sustainable'] else 'not held'}: "
            f"{step['reason']} |"
        )
    sus = live["sustainable_records_per_s"]
    fresh = live["freshness"]
    recon = live["reconciliation"]
    lines += [
        "",
        f"**Sustainable rate: {'none of the rates tried' if sus is None else f'{sus:,.0f} records/s'}** "
        "(the highest rate that held).",
        "",
        f"### Per-event freshness at {fresh['rate']:,.0f} events/s ({fresh['records']:,} records)",
        "",
        "Per event: when a probe polling the warehouse through the job's read-only socket every "
        f"{fresh['probe_interval_s']:.1f} s (as a dashboard would) first saw the event's batch, minus the event's "
        "event_time (its intended send time). Raw = the batch's rows in `events`; open windows = the batch's "
        "rewrite of `page_views_1m` (page and product views only). This is the figure reported; the batch-level "
        "`pipeline_batches.freshness_ms` (commit time - newest event time of the batch) is shown for comparison: "
        "it misses the wait before a batch starts and the spread of event times inside a batch.",
        "",
        "| measure | events | p50 | p99 |",
        "|---|---:|---:|---:|",
        f"| raw events (event_time -> queryable in `events`) | {fresh['raw']['events']:,} | "
        f"{_seconds(fresh['raw']['p50_s'])} | {_seconds(fresh['raw']['p99_s'])} |",
        f"| open windows (event_time -> its `page_views_1m` row updated) | {fresh['windows']['events']:,} | "
        f"{_seconds(fresh['windows']['p50_s'])} | {_seconds(fresh['windows']['p99_s'])} |",
        f"| batch-level `pipeline_batches.freshness_ms` | batches | {_seconds(fresh['batch_freshness_p50_s'])} | "
        f"{_seconds(fresh['batch_freshness_p99_s'])} |",
        "",
        f"Events never seen by the probe: {fresh['events_unseen']}; failed polls: {fresh['probe_failures']}.",
        "",
        f"Reconciliation of the whole sustained phase (totals; its generator has late_rate 0 so the steps' truths "
        f"add up): **{'passed' if recon['ok'] else 'FAILED'}**"
        + ("" if recon["ok"] else f" ({'; '.join(recon['differences'])})")
        + ".",
        "",
    ]
    return lines


def _time_split(result: dict[str, Any]) -> list[str]:
    drain = result.get("P_spark_progress") or {}
    live = (result.get("P_sustained") or {}).get("time_split") or {}  # absent when the phase failed
    if not drain and not live:
        return []

    def cell(split: dict[str, Any], key: str) -> str:
        total = split.get("triggerExecution")
        value = split.get(key)
        if value is None:
            return "n/a"
        share = f" ({value / total:.0%})" if total else ""
        return f"{value / 1000:,.1f} s{share}"

    lines = [
        "## Where the time goes",
        "",
        "Summed over the batches of a run (ms -> s; share of `triggerExecution`). Spark's phases come from the "
        "job's event log (`StreamingQueryProgress.durationMs`); the split of `addBatch` from the job's own log "
        "line per batch. Drain = the median P run (one big batch per run); sustained = the whole sustained "
        "phase (many small batches).",
        "",
        f"| phase | P drain ({drain.get('batches', 'n/a')} batches) | sustained ({live.get('batches', 'n/a')} "
        "batches) |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {cell(drain, key)} | {cell(live, key)} |" for key, name in PHASES]
    lines.append("")
    batches = live.get("batches")
    if batches and live.get("triggerExecution"):
        per_batch = live["triggerExecution"] / batches
        warehouse = live.get("foreach_warehouse", 0) / batches
        spark = live.get("foreach_spark", 0) / batches
        lines += [
            f"Sustained, per batch: {per_batch:,.0f} ms a trigger, of which {spark:,.0f} ms Spark classification "
            f"and {warehouse:,.0f} ms warehouse writes.",
            "",
        ]
    cost = batch_cost(result)
    if cost is not None:
        fixed_ms, per_record_us = cost
        lines += [
            f"Fixed vs per-record cost, solved from the two runs (trigger time = batches x fixed + records x "
            f"per-record): **{fixed_ms:,.0f} ms per batch + {per_record_us:,.1f} µs per record**. The per-record "
            f"part caps any rate at {1e6 / per_record_us:,.0f} records/s (JSON parsing and contract validation in "
            "the JVM, Arrow collection to the driver, chDB inserts and window rewrites); the fixed part (Spark's "
            "job scheduling per batch, about a dozen chDB statements, the offset/commit logs) is the floor of "
            "freshness and what small batches pay over and over. What would move them: fewer chDB round trips per "
            "batch (one multi-statement insert of all partial states), classification in Python/Arrow instead "
            "of a JVM round trip for small batches, and a Spark trigger that adapts its batch size to the lag.",
            "",
        ]
    return lines


def batch_cost(result: dict[str, Any]) -> tuple[float, float] | None:
    """(fixed ms per batch, µs per record) solving both runs' trigger time = batches x fixed + records x per-record.

    The drain run is one or a few big batches, the sustained phase many small ones: two equations, two unknowns.
    None when a run is missing or the solution is not positive (noise larger than the signal).
    """
    drain = result.get("P_spark_progress") or {}
    live = result.get("P_sustained") or {}
    split = live.get("time_split") or {}
    needed = [drain.get("batches"), drain.get("triggerExecution"), split.get("batches"), split.get("triggerExecution")]
    if "steps" not in live or not all(needed):
        return None
    d_n, d_t, s_n, s_t = (float(v or 0) for v in needed)
    d_r = float(result["records_in_topic"])
    s_r = float(sum(step["records"] for step in live["steps"]) + live["freshness"]["records"] + WARM_UP_RECORDS)
    det = d_n * s_r - s_n * d_r
    if det == 0:
        return None
    fixed = (d_t * s_r - s_t * d_r) / det
    per_record = (d_n * s_t - s_n * d_t) / det
    if fixed <= 0 or per_record <= 0:
        return None
    return fixed, per_record * 1000


def _targets(result: dict[str, Any]) -> list[str]:
    live = result.get("P_sustained") or {}
    fresh = (live.get("freshness") or {}).get("raw", {})
    stack = result["peak_rss_mb"].get("stack")
    sus = live.get("sustainable_records_per_s")
    pk = result["ratios"].get("P_over_K")
    rows = [
        ("sustained >= 100,000 events/s", "n/a" if sus is None else f"{sus:,.0f}", sus is not None and sus >= 1e5),
        (
            "raw freshness p99 <= 1.5 s at 50,000 events/s",
            f"{_seconds(fresh.get('p99_s'))} at {live.get('freshness', {}).get('rate', 0):,.0f} events/s",
            False if not fresh.get("p99_s") else fresh["p99_s"] <= 1.5 and live["freshness"]["rate"] >= 5e4,
        ),
        ("P/K >= 0.5 on throughput, exact", _ratio(pk), pk is not None and pk >= 0.5),
        (
            "peak RSS of the local stack <= 4 GB",
            "n/a" if stack is None else f"{stack:,.0f} MiB",
            bool(stack and stack <= 4096),
        ),
    ]
    lines = ["## Targets (issue 7)", "", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {'yes' if ok else 'no'} |" for t, m, ok in rows]
    return [*lines, ""]


def _kafka_engine(result: dict[str, Any]) -> list[str]:
    k = result["K_kafka_engine"]
    lines = ["## K: ClickHouse's Kafka engine", ""]
    if k.get("pinned_chdb_error"):
        lines += [f"The pinned chDB refuses `CREATE TABLE ... ENGINE = Kafka`: `{k['pinned_chdb_error']}`.", ""]
    if "median_records_per_s" in k:
        lines += [
            f"K ran with chDB {k['chdb']} in a separate interpreter (`--k-python`). chDB's message-broker "
            "schedule pool has size 0, so a materialized view on the Kafka table is never fed; the view's SELECT "
            "is driven instead by direct reads of the Kafka table (`stream_like_engine_allow_direct_select`), "
            "each one block of the consumer group, aggregated into an AggregatingMergeTree `page_views_1m`. "
            f"Not exact: K counted {k['page_views']:,} page views, the truth has {k['truth_page_views']:,} "
            "(no deduplication, no lateness rule). K's freshness is not measured: a real view flushes every "
            "`stream_flush_interval_ms` (7.5 s by default), which bounds it from below.",
            "",
        ]
    elif k.get("error"):
        lines += [f"K did not run: `{k['error']}`", ""]
    return lines


def markdown(result: dict[str, Any]) -> str:
    machine = result["machine"]
    lines = [
        "# rtap bench",
        "",
        f"Command: `{result['command']}` ({result['when']}; {machine['cpus']} CPUs; Python {machine['python']}; "
        f"1-min load average {machine['load_average_1m_before']:.1f} before, "
        f"{machine['load_average_1m_after']:.1f} after).",
        "",
        f"{result['records_in_topic']:,} records in one topic ({result['partitions']} partitions), "
        f"{result['repeats']} repeats, Spark `{result['spark_master']}`; broker, Spark, chDB and this harness all "
        "on the same machine. CPU = CPU time of the local stack during the measurement, per record "
        "(for P: the job's process tree from launch, start-up included).",
        "",
        "| id | measurement | median records/s | spread (min .. max) | CPU-µs/record |",
        "|---|---|---:|---:|---:|",
    ]
    for short, key, name in ROWS:
        s = result[key]
        if "median_records_per_s" not in s:
            lines.append(f"| {short} | {name} | n/a | error: {s.get('error')} | n/a |")
            continue
        cpu = s.get("median_cpu_us_per_record")
        lines.append(
            f"| {short} | {name} | {_rate(s['median_records_per_s'])} | {_rate(s['min_records_per_s'])} .. "
            f"{_rate(s['max_records_per_s'])} | {'n/a' if cpu is None else f'{cpu:,.1f}'} |"
        )
    ratios, p, peaks = result["ratios"], result["P_rtap_job"], result["peak_rss_mb"]
    recon = result["reconciliation"]
    lines += [
        "",
        f"Ratios of medians: P/B3 **{_ratio(ratios['P_over_B3'])}**, P/K **{_ratio(ratios['P_over_K'])}**, "
        f"P/B4 {_ratio(ratios['P_over_B4'])}, P1/B1 {_ratio(ratios['P1_over_B1'])}; P sustained/B3 "
        f"**{_ratio(ratios.get('P_sustained_over_B3'))}**, P sustained/K "
        f"**{_ratio(ratios.get('P_sustained_over_K'))}**.",
        "",
        f"P, the job's own figure (input rows / summed batch durations): {_rate(p['median_job_rows_per_s'])} "
        f"rows/s; batches per run {p['batches']}; start-up (process start -> first batch) "
        f"{p['median_startup_s']:.1f} s, not in the drain time.",
        "",
        "Peak RSS (VmHWM, MiB): "
        + ", ".join(f"{name} {'n/a' if v is None else f'{v:,.0f}'}" for name, v in peaks.items())
        + " (stack = broker + job).",
        "",
        f"Reconciliation of every P run against the produced truth: **{'passed' if recon['ok'] else 'FAILED'}**"
        + ("" if recon["ok"] else f" ({'; '.join(d for r in recon['runs'] for d in r['differences'])})")
        + ".",
        "",
    ]
    lines += _sustained(result) + _kafka_engine(result) + _time_split(result) + _targets(result)
    return "\n".join(lines)


def chart(result: dict[str, Any], path: Path) -> None:
    """Median records/s per measurement, with the min..max spread as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, medians, low, high = [], [], [], []
    for short, key, _ in ROWS:
        s = result[key]
        if "median_records_per_s" in s:
            names.append(short)
            medians.append(s["median_records_per_s"])
            low.append(s["median_records_per_s"] - s["min_records_per_s"])
            high.append(s["max_records_per_s"] - s["median_records_per_s"])
    figure, axes = plt.subplots(figsize=(8, 4))
    axes.bar(names, medians, yerr=[low, high], capsize=4, color="#4c72b0")
    axes.set_ylabel("records/s (median, min..max)")
    axes.set_title(f"rtap bench: {result['records_in_topic']:,} records, {result['repeats']} repeats")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write(result: dict[str, Any], out: Path) -> list[Path]:
    """``bench-<time>.json`` per run, plus ``bench.md`` and ``bench.png`` for the latest run."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = result["when"].replace(":", "").replace("-", "").replace("+0000", "Z")
    paths = [out / f"bench-{stamp}.json", out / "bench.md", out / "bench.png"]
    paths[0].write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    paths[1].write_text(markdown(result))
    chart(result, paths[2])
    return paths
