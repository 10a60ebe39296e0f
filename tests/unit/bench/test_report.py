"""The report: every measurement, the ratios, a failed K with its exact error, the chart file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from rtap.bench.produce import Sample, summary
from rtap.bench.report import markdown, write


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
    result["K_kafka_engine"] = {"error": k_error}
    result.update(
        command="rtap bench --events 1000 --repeats 2",
        when="2026-01-01T00:00:00+00:00",
        machine={"cpus": 2, "python": "3.12", "load_average_1m_before": 1.0, "load_average_1m_after": 2.0},
        records_in_topic=1000,
        partitions=6,
        repeats=2,
        spark_master="local[2]",
        peak_rss_mb={"broker": 400.0, "job": 900.0, "stack": 1300.0},
        ratios={"P_over_B3": 11_000 / 55_000, "P_over_K": None, "P1_over_B1": 0.19, "P_over_B4": 0.02},
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


def test_write_produces_json_markdown_and_png(tmp_path: Path) -> None:
    result = _result(None)
    result["K_kafka_engine"] = {**summary([Sample(1000, 0.2)]), "error": None}
    json_path, md_path, png_path = write(result, tmp_path)
    assert orjson.loads(json_path.read_bytes())["ratios"]["P_over_B3"] == result["ratios"]["P_over_B3"]
    assert "| K | chDB Kafka engine" in md_path.read_text()
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
