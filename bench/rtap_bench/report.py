"""The result of a run as files: JSON (everything), a short markdown report and a PNG bar chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from rtap_bench.produce import median_rate

ROWS = (
    ("B1", "B1_raw_produce", "raw confluent-kafka produce (pre-encoded)"),
    ("P1", "P1_rtap_produce", "rtap produce (generate + encode + produce)"),
    ("B2", "B2_raw_consume", "raw confluent-kafka consume"),
    ("B3", "B3_spark_passthrough", "Spark Kafka source -> noop sink (steady state)"),
    ("B4", "B4_warehouse_insert", "chDB insert_arrow into a copy of events"),
    ("P", "P_rtap_job", "full rtap job (steady state)"),
    ("K", "K_kafka_engine", "chDB Kafka engine + materialized view"),
)


# Issue 14's targets, and issue 22's: freshness against its same-run floor, the held rate against B3.
TARGET_SUSTAINED_RATE = 50_000.0
TARGET_SUSTAINED_P99_S = 3.0
TARGET_P_OVER_B3 = 0.5
TARGET_HELD_OVER_B3 = 0.4
TARGET_FRESHNESS_P99_S = 1.0
TARGET_FRESHNESS_RATES = (10_000.0, 1_000.0)
TARGET_P99_OVER_FLOOR = 2.0
TARGET_STACK_MB = 4096.0


def lead_in_sentence(lead_in: dict[str, Any] | None) -> str:
    """The lead-in's own figures (``rtap_bench.sustain.LEAD_IN_RATE``), or nothing for a run without one."""
    if not lead_in:
        return ""
    fresh = lead_in["freshness"]
    return (
        f" After the start-up and before anything measured, not judged: a lead-in of "
        f"{lead_in['records'] / lead_in['rate']:.0f} s at {lead_in['rate']:,.0f} events/s while the JVMs compile "
        f"their hot code (freshness p50 {fresh['p50_s']:.2f} s, p99 {fresh['p99_s']:.2f} s); the cold start is "
        "`bench_startup`'s."
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
    ("foreach_spark", "- in it, Spark's stage: parse and validate, collect to Arrow"),
    ("foreach_warehouse", "- the warehouse writes (beside the next addBatch when behind): dedup, inserts, commit"),
    ("walCommit", "walCommit: offsets to the checkpoint"),
    ("commitOffsets", "commitOffsets: commit log"),
    ("triggerExecution", "triggerExecution: the whole trigger"),
)


def _step_at(live: dict[str, Any], rate: float) -> dict[str, Any] | None:
    """The fixed-rate step at ``rate`` (or any step at it), None when the run had none."""
    steps = sorted(live.get("steps") or [], key=lambda s: s["kind"] != "fixed")
    return next((s for s in steps if s["rate"] == rate), None)


def _verdict(step: dict[str, Any]) -> str:
    label = {"held": "held", "failed": "failed", "producer": "sender behind (says nothing of the job)"}
    return f"{label[step['outcome']]}: {step['reason']}"


def _sustained(result: dict[str, Any]) -> list[str]:
    live = result.get("P_sustained")
    if not live:
        return []
    title = "## P live: realistic traffic, open loop, against `rtap up --no-generator`"
    if "error" in live:
        return [title, "", f"Failed: `{live['error']}`", "", *_against_floor(result)]
    rule = live["rule"]
    lines = [
        title,
        "",
        "The stack a user runs: `rtap up --no-generator` (its own broker, the job with rtap's default stream "
        "settings, the dashboard and the status line in one process), on free ports in a private data "
        f"directory, Spark `{result['spark_master']}`; each step offers a fixed rate for "
        f"{live['step_s']:.0f} s from a separate process (`rtap_bench.traffic`, the sender of `bench/outside.py`): "
        "valid events plus ~1% exact re-sends, ~0.5% truncated JSON and ~0.3% events two minutes late, each "
        "stamped with its intended send time. Between steps the job drains any backlog. **Per-event freshness** = "
        "`pipeline_batches.finished_at` of the batch that stored the event minus its event_time, over every event "
        "the step stored (`bench/outside.py` measures the same, with the same code). A step **held** when the "
        f"sender kept its schedule (else it says nothing about the job), at least two batches committed in the "
        f"step's second half, their Kafka lag grew by less than {rule['lag_growth_limit_of_rate']:.0%} of the "
        f"rate (least-squares slope) and freshness p99 <= {rule['freshness_p99_limit_s']:.0f} s. Stack start-up "
        f"(launch -> warm-up committed): {live['startup_s']:.0f} s.{lead_in_sentence(live.get('lead_in'))}",
        "",
        "### Per-event freshness at fixed rates",
        "",
        "| offered events/s | sender achieved events/s | sender max behind | events | p50 | p99 | max "
        "| last stored after the step's end |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for step in (s for s in live["steps"] if s["kind"] == "fixed"):
        fresh = step["freshness"]
        lines.append(
            f"| {step['rate']:,.0f} | {step['achieved_rate']:,.0f} | {_seconds(step['producer_max_behind_s'])} | "
            f"{fresh['events']:,} | {_seconds(fresh['p50_s'])} | {_seconds(fresh['p99_s'])} | "
            f"{_seconds(fresh['max_s'])} | {_seconds(fresh['stored_after_end_s'])} |"
        )
    lines += ["", *_against_floor(result)]
    lines += [
        "### The sustainable-rate search",
        "",
        f"Seeded by the fixed rates; then up x{rule['growth']} from the highest rate held until a step fails, then "
        f"geometric bisection until lowest failed / highest held <= {rule['resolution']}, within the step budget.",
        "",
        "| step | kind | offered events/s | sender achieved | sender max behind | records | batches judged "
        "| lag growth records/s | freshness p50 / p99 | verdict |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for i, step in enumerate(live["steps"], 1):
        growth = step["lag_growth_per_s"]
        fresh = step["freshness"]
        lines.append(
            f"| {i} | {step['kind']} | {step['rate']:,.0f} | {step['achieved_rate']:,.0f} | "
            f"{_seconds(step['producer_max_behind_s'])} | {step['records']:,} | {step['batches']} | "
            f"{'n/a' if growth is None else f'{growth:,.0f}'} | {_seconds(fresh['p50_s'])} / "
            f"{_seconds(fresh['p99_s'])} | {_verdict(step)} |"
        )
    held, failed, limit = (
        live["sustainable_records_per_s"],
        live["lowest_failed_records_per_s"],
        live["producer_limit_records_per_s"],
    )
    if held is None:
        ceiling = "no rate held, so there is no ceiling to bracket"
    elif live["ceiling_found"]:
        ceiling = f"the ceiling lies between them (lowest failed: {_rate(failed)} events/s)"
    elif limit is not None:
        ceiling = f"ceiling not found: the sender could not keep up at {_rate(limit)} events/s"
    else:
        ceiling = "ceiling not found: no step above it failed within the step budget"
    recon = live["reconciliation"]
    missing = sum(s["events_missing"] for s in live["steps"])
    lines += [
        "",
        f"**Sustainable rate (highest held): {'none of the rates tried' if held is None else f'{held:,.0f} events/s'}"
        f"**; {ceiling}.",
        "",
        f"Reconciliation of the whole live phase against what the sender sent (events, dead letters, late events, "
        f"duplicates, sessions; {live['records_total']:,} records): **{'passed' if recon['ok'] else 'FAILED'}**"
        + ("" if recon["ok"] else f" ({'; '.join(recon['differences'])})")
        + f". Valid events the freshness query did not find: {missing}.",
        "",
    ]
    return lines


def _against_floor(result: dict[str, Any]) -> list[str]:
    floor = result.get("P_floor")
    if not floor:
        return []
    title = "### Against the floor: a pass-through job, same run, same rates, same sender"
    if "error" in floor:
        return [title, "", f"Failed: `{floor['error']}`", ""]
    steps = {step["rate"]: step for step in floor["steps"]}
    lines = [
        title,
        "",
        "The floor (`rtap_bench.floor`): Spark's Kafka source in the job's session, with its options, polling "
        "delay and trigger -> a foreachBatch that only takes each record's event id and time to the driver and "
        "notes the time. A process of its own on a fresh broker of its own, before the live phase; freshness as "
        "for the job (that time minus event_time, each event of the step once). What any micro-batch design pays "
        f"on this machine; the job's figures are read against it. Floor start-up: {floor['startup_s']:.0f} s."
        f"{lead_in_sentence(floor.get('lead_in'))}",
        "",
        "| events/s | job p50 | job p99 | floor p50 | floor p99 | job / floor p99 | floor: sender achieved, max behind "
        "| floor events | floor batches |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result.get("freshness_vs_floor") or []:
        step = steps[row["rate"]]
        ratio = _ratio(row["p99_over_floor"]) + (" (sender behind)" if row["sender_behind"] else "")
        lines.append(
            f"| {row['rate']:,.0f} | {_seconds(row['job_p50_s'])} | {_seconds(row['job_p99_s'])} | "
            f"{_seconds(row['floor_p50_s'])} | {_seconds(row['floor_p99_s'])} | {ratio} | "
            f"{step['achieved_rate']:,.0f}, {_seconds(step['producer_max_behind_s'])} | "
            f"{step['freshness']['events']:,} | {step['batches']} |"
        )
    return [*lines, ""]


def _time_split(result: dict[str, Any]) -> list[str]:
    drain = result.get("P_spark_progress") or {}
    live = (result.get("P_sustained") or {}).get("time_split") or {}  # absent when the phase failed
    floor = (result.get("P_floor") or {}).get("time_split") or {}
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
        "line per batch. Drain = the median P run (batches of the drain size); live = the whole live phase "
        "(many small batches); floor = the pass-through job's steps. Each includes its first batch, which "
        "generates and compiles the code.",
        "",
        f"| phase | P drain ({drain.get('batches', 'n/a')} batches) | live ({live.get('batches', 'n/a')} batches) "
        f"| floor ({floor.get('batches', 'n/a')} batches) |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {name} | {cell(drain, key)} | {cell(live, key)} | {cell(floor, key)} |" for key, name in PHASES]
    lines.append("")
    batches = live.get("batches")
    if batches and live.get("triggerExecution"):
        per_batch = live["triggerExecution"] / batches
        warehouse = live.get("foreach_warehouse", 0) / batches
        spark = live.get("foreach_spark", 0) / batches
        lines += [
            f"Live, per batch: {per_batch:,.0f} ms a trigger; {spark:,.0f} ms Spark's stage (parse and validate in "
            f"the Python workers, collect to Arrow) and {warehouse:,.0f} ms warehouse writes (dedup lookup, inserts, "
            "window rewrites, commit row), beside the next batch's Spark stage while behind (rtap.stream.overlap)."
            + (
                f" The floor: {floor['triggerExecution'] / floor['batches']:,.0f} ms a trigger."
                if floor.get("batches") and floor.get("triggerExecution")
                else ""
            ),
            "",
        ]
    cost = batch_cost(result)
    if cost is not None:
        lines += _cost_model(*cost, live=result.get("P_sustained") or {})
    return lines


def _cost_model(fixed_ms: float, per_record_us: float, live: dict[str, Any]) -> list[str]:
    """What the two cost figures imply for freshness at the target rates: a model, next to what was measured.

    With rtap's default trigger (the next batch as soon as the previous one committed), a batch at ``r``
    events/s holds the records of one cycle, so the cycle is ``T = fixed + r x T x per-record``, i.e.
    ``T = fixed / (1 - r x per-record)``; an event waits for the batch in progress, then rides the next one,
    so its freshness is between T and 2 T.
    """
    lines = [
        f"Fixed vs per-record cost, solved from the two runs without their first batch (trigger time = batches x "
        f"fixed + records x per-record): **{fixed_ms:,.0f} ms per batch + {per_record_us:,.1f} µs per record**. "
        f"The per-record part alone caps the job at {1e6 / per_record_us:,.0f} records/s; the fixed part is the "
        "floor of freshness. With the default trigger a batch cycle at r events/s is T = fixed / (1 - r x "
        "per-record) and an event's freshness lies between T and 2 T (a model from the two figures above):",
        "",
        "| events/s | model cycle T | model freshness bound 2 T | measured p99 |",
        "|---:|---:|---:|---:|",
    ]
    for rate in (*TARGET_FRESHNESS_RATES[::-1], TARGET_SUSTAINED_RATE):
        step = _step_at(live, rate)
        measured = "n/a" if step is None else _seconds(step["freshness"]["p99_s"])
        load = rate * per_record_us / 1e6
        if load >= 1:
            lines.append(
                f"| {rate:,.0f} | cannot keep up (per-record cost {load:.2f} s per second) | n/a | {measured} |"
            )
            continue
        cycle = fixed_ms / 1000 / (1 - load)
        lines.append(f"| {rate:,.0f} | {cycle:.2f} s | {2 * cycle:.2f} s | {measured} |")
    return [*lines, ""]


def batch_cost(result: dict[str, Any]) -> tuple[float, float] | None:
    """(fixed ms per batch, µs per record) solving both runs' trigger time = batches x fixed + records x per-record.

    The drain is a few full batches, the live phase many small ones: two equations, two unknowns. Each run's
    first batch is left out (it compiles the code). None when a run is missing or the solution is not
    positive (noise larger than the signal).
    """
    drain = result.get("P_spark_progress") or {}
    live = result.get("P_sustained") or {}
    split = live.get("time_split") or {}
    if "steps" not in live or not all(s.get("batches", 0) > 1 and s.get("triggerExecution") for s in (drain, split)):
        return None
    d_n, d_t, d_r = _without_first(drain, float(result["records_in_topic"]))
    s_n, s_t, s_r = _without_first(split, float(live["records_total"]))
    det = d_n * s_r - s_n * d_r
    if det == 0:
        return None
    fixed = (d_t * s_r - s_t * d_r) / det
    per_record = (d_n * s_t - s_n * d_t) / det
    if fixed <= 0 or per_record <= 0:
        return None
    return fixed, per_record * 1000


def _without_first(split: dict[str, Any], records: float) -> tuple[float, float, float]:
    """(batches, trigger ms, records) of a run after its first batch."""
    return (
        float(split["batches"] - 1),
        float(split["triggerExecution"] - split.get("first_batch_ms", 0)),
        records - float(split.get("first_batch_records", 0)),
    )


def targets(result: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """Issue 14's and issue 22's targets: (target, what this run measured, met)."""
    live = result.get("P_sustained") or {}
    failed_live = "error" in live
    rows: list[tuple[str, str, bool]] = []

    held = live.get("sustainable_records_per_s")
    at = _step_at(live, TARGET_SUSTAINED_RATE)
    p99 = None if at is None else at["freshness"]["p99_s"]
    rows.append(
        (
            f"sustained >= {TARGET_SUSTAINED_RATE:,.0f} events/s of realistic traffic, per-event freshness p99 "
            f"<= {TARGET_SUSTAINED_P99_S:.0f} s at that rate",
            "live phase failed"
            if failed_live
            else f"highest rate held {_rate(held)} events/s; at {TARGET_SUSTAINED_RATE:,.0f} events/s: "
            + ("not measured" if at is None else f"p99 {_seconds(p99)}, {at['outcome']}"),
            held is not None
            and held >= TARGET_SUSTAINED_RATE
            and at is not None
            and at["outcome"] == "held"
            and p99 is not None
            and p99 <= TARGET_SUSTAINED_P99_S,
        )
    )

    held_ratio = result["ratios"].get("P_sustained_over_B3")
    rows.append(
        (
            f"highest rate held live >= {TARGET_HELD_OVER_B3} x B3 (same run)",
            "live phase failed"
            if failed_live
            else f"held {_rate(held)} / B3 {_rate(median_rate(result, 'B3_spark_passthrough'))} records/s = "
            f"{_ratio(held_ratio)}",
            held_ratio is not None and held_ratio >= TARGET_HELD_OVER_B3,
        )
    )

    ratio = result["ratios"].get("P_over_B3")
    rows.append(
        (
            f"full job draining a pre-filled topic >= {TARGET_P_OVER_B3} x B3 (steady state, same run)",
            f"P {_rate(median_rate(result, 'P_rtap_job'))} / B3 {_rate(median_rate(result, 'B3_spark_passthrough'))} "
            f"records/s = {_ratio(ratio)}",
            ratio is not None and ratio >= TARGET_P_OVER_B3,
        )
    )

    for rate in TARGET_FRESHNESS_RATES:
        step = _step_at(live, rate)
        if step is None:
            measured, met = "not measured", False
        else:
            fresh = step["freshness"]
            behind = "; the sender fell behind its schedule" if step["outcome"] == "producer" else ""
            measured = f"p99 {_seconds(fresh['p99_s'])} (p50 {_seconds(fresh['p50_s'])}){behind}"
            met = (
                step["outcome"] != "producer"
                and fresh["p99_s"] is not None
                and fresh["p99_s"] <= TARGET_FRESHNESS_P99_S
            )
        rows.append(
            (
                f"per-event freshness p99 <= {TARGET_FRESHNESS_P99_S:.0f} s at {rate:,.0f} events/s "
                "(on a quiet machine of this kind)",
                measured,
                met,
            )
        )

    compared = {row["rate"]: row for row in result.get("freshness_vs_floor") or []}
    for rate in TARGET_FRESHNESS_RATES:
        row = compared.get(rate)
        if row is None or row["p99_over_floor"] is None:
            measured, met = "not measured", False
        else:
            behind = "; the sender fell behind its schedule" if row["sender_behind"] else ""
            measured = (
                f"job p99 {_seconds(row['job_p99_s'])} / floor p99 {_seconds(row['floor_p99_s'])} = "
                f"{_ratio(row['p99_over_floor'])}{behind}"
            )
            met = not row["sender_behind"] and row["p99_over_floor"] <= TARGET_P99_OVER_FLOOR
        rows.append(
            (
                f"per-event freshness p99 <= {TARGET_P99_OVER_FLOOR:.0f} x the floor's p99 at {rate:,.0f} events/s "
                "(same run, any machine)",
                measured,
                met,
            )
        )

    if failed_live or not live:
        found = "live phase failed" if failed_live else "not run"
    elif held is None:
        found = "no rate held"
    elif live["ceiling_found"]:
        found = f"highest held {_rate(held)}, lowest failed {_rate(live['lowest_failed_records_per_s'])} events/s"
    elif live["producer_limit_records_per_s"] is not None:
        found = f"highest held {_rate(held)}; the sender fell behind at {_rate(live['producer_limit_records_per_s'])}"
    else:
        found = f"highest held {_rate(held)}; no step above it failed"
    rows.append(
        ("the sustainable-rate search finds the ceiling (a step that fails)", found, bool(live.get("ceiling_found")))
    )

    b3, p = result["B3_spark_passthrough"], result["P_rtap_job"]
    steady = [len_ for d in (b3, p) for len_ in d.get("batches", [])]
    rows.append(
        (
            "B3 (and P) measured in steady state, not start-up",
            f"from the end of each drain's first batch to the end of its last; batches per drain B3 "
            f"{b3.get('batches')}, P {p.get('batches')}, up to {result.get('batch_records', 0):,} records each",
            bool(steady) and min(steady) >= 2,
        )
    )

    stack = result["peak_rss_mb"].get("stack")
    rows.append(
        (
            "peak RSS of the local stack <= 4 GB (this run's drains and live phase; the 5M-record backlog drain is "
            "not part of `rtap bench`)",
            "n/a" if stack is None else f"{stack:,.0f} MiB",
            bool(stack and stack <= TARGET_STACK_MB),
        )
    )
    return rows


def _targets(result: dict[str, Any]) -> list[str]:
    lines = ["## Targets (issues 14 and 22)", "", "| target | this run | met |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {'yes' if ok else '**no**'} |" for t, m, ok in targets(result)]
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
        f"{machine['load_average_1m_after']:.1f} after; CPU time stolen by the host's other tenants: "
        f"{machine.get('steal', 0.0):.0%}).",
        "",
        *_targets(result),
        "## Throughput against the baselines",
        "",
        f"{result['records_in_topic']:,} records in one topic ({result['partitions']} partitions), "
        f"{result['repeats']} repeats, Spark `{result['spark_master']}`; broker, Spark, chDB and this harness all "
        "on the same machine. CPU = CPU time of the local stack during the measurement, per record "
        "(for B3 and P over the whole drain; for P the job's process tree from launch, start-up included). "
        f"B3 and P read the topic in micro-batches of {result['batch_records']:,} records and are timed in "
        "steady state: the records after the first batch over the time from the end of the first batch to the "
        "end of the last (the first batch carries the start-up: Spark's planning, and for P its code generation).",
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
    ratios, p, b3, peaks = result["ratios"], result["P_rtap_job"], result["B3_spark_passthrough"], result["peak_rss_mb"]
    recon = result["reconciliation"]
    lines += [
        "",
        f"Ratios of medians: P/B3 **{_ratio(ratios['P_over_B3'])}**, P/K **{_ratio(ratios['P_over_K'])}**, "
        f"P/B4 {_ratio(ratios['P_over_B4'])}, P1/B1 {_ratio(ratios['P1_over_B1'])}; P sustained/B3 "
        f"**{_ratio(ratios.get('P_sustained_over_B3'))}**, P sustained/K "
        f"**{_ratio(ratios.get('P_sustained_over_K'))}** (K is timed over its whole drain in blocks of up to 65,409 "
        "records, from its first read that returned records).",
        "",
        f"Whole drains, first batch included: B3 {_rate(b3['whole']['median_records_per_s'])} records/s, P "
        f"{_rate(p['whole']['median_records_per_s'])} records/s (P from its first batch's start; its process "
        f"start-up, {p['median_startup_s']:.1f} s to the first batch, is in neither). Batches per drain: B3 "
        f"{b3['batches']}, P {p['batches']} (largest {b3['largest_batch_records']:,} and "
        f"{p['largest_batch_records']:,} records). P, the job's own figure (input rows / summed batch durations): "
        f"{_rate(p['median_job_rows_per_s'])} rows/s.",
        "",
        "Peak RSS (VmHWM, MiB): "
        + ", ".join(f"{name} {'n/a' if v is None else f'{v:,.0f}'}" for name, v in peaks.items())
        + " (stack = the larger of the harness's broker with P's job and the live phase's whole `rtap up` tree: "
        "its process, Spark's JVM and Python workers, its broker).",
        "",
        f"Reconciliation of every P run against the produced truth: **{'passed' if recon['ok'] else 'FAILED'}**"
        + ("" if recon["ok"] else f" ({'; '.join(d for r in recon['runs'] for d in r['differences'])})")
        + ".",
        "",
    ]
    lines += _sustained(result) + _kafka_engine(result) + _time_split(result)
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
