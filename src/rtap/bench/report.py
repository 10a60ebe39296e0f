"""The result of a run as files: JSON (everything), a short markdown report and a PNG bar chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

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
        f"P/B4 {_ratio(ratios['P_over_B4'])}, P1/B1 {_ratio(ratios['P1_over_B1'])}.",
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
    if result["K_kafka_engine"].get("error"):
        lines += [f"K did not run: `{result['K_kafka_engine']['error']}`", ""]
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
