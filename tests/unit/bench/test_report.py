"""The report: every measurement, the ratios, a failed K with its exact error, the chart file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from rtap.bench.produce import Sample, summary
from rtap.bench.report import batch_cost, markdown, write


def _result(k_error: str | None) -> dict[str, Any]:
    rates = {
        "B1_raw_produce": [100_000.0, 120_000.0],
        "P1_rtap_produce": [20_000.0, 22_000.0],
        "B2_raw_consume": [300_000.0, 310_000.0],
        "B3_spark_passthrough": [50_000.0, 60_000.0],
        "B4_warehouse_insert": [400_000.0, 500_000.0],
        "P_rtap_job": [10_000.0, 12_000.0],
    }
    result: dict[str, Any] = {
        key: summary([Sample(1000, 1000 / r, 0.5) for r in values]) for key, values in rates.items()
    }
    result["P_rtap_job"].update(median_job_rows_per_s=15_000.0, median_startup_s=12.0, batches=[3, 4])
    result["K_kafka_engine"] = {"error": k_error, "pinned_chdb_error": "Code: 49. Shutdown was called."}
    result["P_sustained"] = {
        "sustainable_records_per_s": 2_000.0,
        "rule": {
            "judged": "batches committed in the second half of each step",
            "producer_lag_limit_s": 1.0,
            "lag_growth_limit_of_rate": 0.05,
            "batch_freshness_p99_limit_s": 10.0,
        },
        "step_s": 30.0,
        "startup_s": 40.0,
        "steps": [
            {"rate": 2_000.0, "records": 60_000, "batches": 6, "lag_growth_per_s": 3.0, "freshness_p50_s": 2.0,
             "freshness_p99_s": 3.0, "sustainable": True, "reason": "lag growth 3 records/s"},
            {"rate": 4_000.0, "records": 120_000, "batches": 2, "lag_growth_per_s": 900.0, "freshness_p50_s": 9.0,
             "freshness_p99_s": 14.0, "sustainable": False, "reason": "Kafka lag grew by 900 records/s"},
        ],
        "freshness": {
            "rate": 1_000.0, "records": 30_000, "probe_interval_s": 0.2, "probe_failures": 0, "events_unseen": 0,
            "raw": {"events": 29_000, "p50_s": 2.5, "p99_s": 4.25},
            "windows": {"events": 20_000, "p50_s": 3.0, "p99_s": 5.5},
            "batch_freshness_p50_s": 2.0, "batch_freshness_p99_s": 3.5,
        },
        "reconciliation": {"ok": True, "checks": {}, "differences": []},
        "time_split": {"batches": 40, "triggerExecution": 80_000, "addBatch": 70_000, "foreach_spark": 30_000,
                       "foreach_warehouse": 38_000, "walCommit": 2_000},
    }  # fmt: skip
    result["P_spark_progress"] = {"batches": 1, "triggerExecution": 1_150, "addBatch": 1_100}
    result.update(
        command="rtap bench --events 1000 --repeats 2",
        when="2026-01-01T00:00:00+00:00",
        machine={"cpus": 2, "python": "3.12", "load_average_1m_before": 1.0, "load_average_1m_after": 2.0},
        records_in_topic=1000,
        partitions=6,
        repeats=2,
        spark_master="local[2]",
        peak_rss_mb={"broker": 400.0, "job": 900.0, "stack": 1300.0},
        ratios={
            "P_over_B3": 11_000 / 55_000,
            "P_over_K": None,
            "P1_over_B1": 0.19,
            "P_over_B4": 0.02,
            "P_sustained_over_B3": 2_000 / 55_000,
            "P_sustained_over_K": None,
        },
        reconciliation={"ok": True, "runs": [{"ok": True, "differences": []}]},
    )
    return result


def test_summary_is_median_and_spread() -> None:
    s = summary([Sample(100, 1.0, 0.001), Sample(100, 2.0, 0.002), Sample(100, 0.5, 0.003)])
    assert (s["median_records_per_s"], s["min_records_per_s"], s["max_records_per_s"]) == (100.0, 50.0, 200.0)
    assert s["median_cpu_us_per_record"] == 20.0


def test_markdown_has_every_row_ratio_and_the_k_error() -> None:
    text = markdown(_result("Code: 49. DB::Exception: Shutdown was called. (LOGICAL_ERROR)"))
    for short in ("| B1 |", "| P1 |", "| B2 |", "| B3 |", "| B4 |", "| P |", "| K |"):
        assert short in text
    assert "P/B3 **0.20**" in text
    assert "P/K **n/a**" in text
    assert "Shutdown was called" in text
    assert "`rtap bench --events 1000 --repeats 2`" in text
    assert "**passed**" in text
    assert "P sustained/B3 **0.04**" in text


def test_markdown_reports_the_sustained_rate_freshness_time_split_and_targets() -> None:
    text = markdown(_result("not run"))
    assert "**Sustainable rate: 2,000 records/s**" in text
    assert "| 2 | 4,000 | 120,000 | 2 | 900 | 9.00 s / 14.00 s | not held: Kafka lag grew by 900 records/s |" in text
    assert "| raw events (event_time -> queryable in `events`) | 29,000 | 2.50 s | 4.25 s |" in text
    assert "| open windows (event_time -> its `page_views_1m` row updated) | 20,000 | 3.00 s | 5.50 s |" in text
    # Shares of the sustained phase's trigger time; a phase the drain run lacks is n/a.
    assert "| - of which warehouse: dedup lookup, inserts, window rewrites, commit row | n/a | 38.0 s (48%) |" in text
    assert "Sustained, per batch: 2,000 ms a trigger, of which 750 ms Spark classification and 950 ms" in text
    # 1 batch of 1,000 records in 1.15 s and 40 batches of 210,500 records in 80 s: solved exactly.
    fixed, per_record_us = batch_cost(_result(None)) or (0.0, 0.0)
    assert 1 * fixed + 1_000 * per_record_us / 1000 == pytest.approx(1_150)
    assert 40 * fixed + 210_500 * per_record_us / 1000 == pytest.approx(80_000)
    assert f"**{fixed:,.0f} ms per batch + {per_record_us:,.1f} µs per record**" in text
    assert "| sustained >= 100,000 events/s | 2,000 | no |" in text
    assert "| peak RSS of the local stack <= 4 GB | 1,300 MiB | yes |" in text
    assert "The pinned chDB refuses `CREATE TABLE ... ENGINE = Kafka`: `Code: 49. Shutdown was called.`" in text


def test_write_produces_json_markdown_and_png(tmp_path: Path) -> None:
    result = _result(None)
    result["K_kafka_engine"] = {
        **summary([Sample(1000, 0.2)]),
        "error": None,
        "chdb": "3.7.2",
        "page_views": 760,
        "truth_page_views": 750,
    }
    json_path, md_path, png_path = write(result, tmp_path)
    assert orjson.loads(json_path.read_bytes())["ratios"]["P_over_B3"] == result["ratios"]["P_over_B3"]
    text = md_path.read_text()
    assert "| K | chDB Kafka engine" in text
    assert "K ran with chDB 3.7.2" in text
    assert "K counted 760 page views, the truth has 750" in text
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
