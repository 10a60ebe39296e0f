"""The report: every measurement, the ratios, a failed K with its exact error, the chart file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from rtap_bench.floor import against_floor
from rtap_bench.produce import Sample, summary
from rtap_bench.report import batch_cost, markdown, targets, write


def _step(kind: str, rate: float, outcome: str, p50: float, p99: float, **extra: Any) -> dict[str, Any]:
    step: dict[str, Any] = {
        "kind": kind,
        "rate": rate,
        "achieved_rate": rate * 0.999,
        "producer_max_behind_s": 0.01,
        "records": int(rate * 20),
        "freshness": {"events": int(rate * 19.5), "p50_s": p50, "p99_s": p99, "max_s": p99 + 0.5,
                      "stored_after_end_s": 0.9},
        "events_missing": 0,
        "outcome": outcome,
        "reason": f"{outcome} at {rate:,.0f}",
        "batches": 9,
        "lag_growth_per_s": 3.0,
    }  # fmt: skip
    step.update(extra)
    return step


def _floor_step(rate: float, p50: float, p99: float) -> dict[str, Any]:
    return {
        "kind": "floor",
        "rate": rate,
        "achieved_rate": rate * 0.998,
        "producer_max_behind_s": 0.02,
        "records": int(rate * 20),
        "batches": 60,
        "freshness": {"events": int(rate * 19.5), "p50_s": p50, "p99_s": p99, "max_s": p99 + 0.2,
                      "stored_after_end_s": 0.4},
        "events_missing": 0,
    }  # fmt: skip


def _result(k_error: str | None) -> dict[str, Any]:
    rates = {
        "B1_raw_produce": [100_000.0, 120_000.0],
        "P1_rtap_produce": [20_000.0, 22_000.0],
        "B2_raw_consume": [300_000.0, 310_000.0],
        "B4_warehouse_insert": [400_000.0, 500_000.0],
    }
    result: dict[str, Any] = {
        key: summary([Sample(1000, 1000 / r, 0.5) for r in values]) for key, values in rates.items()
    }
    for key, values, whole in (
        ("B3_spark_passthrough", [50_000.0, 60_000.0], 40_000.0),
        ("P_rtap_job", [25_000.0, 30_000.0], 20_000.0),
    ):
        result[key] = {
            **summary([Sample(800, 800 / r) for r in values]),
            "median_cpu_us_per_record": 40.0,
            "whole": summary([Sample(1000, 1000 / whole, 0.04)]),
            "batches": [5, 5],
            "largest_batch_records": 200,
        }
    result["P_rtap_job"].update(median_job_rows_per_s=35_000.0, median_startup_s=12.0)
    result["K_kafka_engine"] = {"error": k_error, "pinned_chdb_error": "Code: 49. Shutdown was called."}
    result["P_sustained"] = {
        "sustainable_records_per_s": 61_237.0,
        "lowest_failed_records_per_s": 67_800.0,
        "producer_limit_records_per_s": None,
        "ceiling_found": True,
        "rule": {
            "judged": "batches committed in the second half of each step; freshness over every event of the step",
            "producer_behind_limit_s": 1.0,
            "lag_growth_limit_of_rate": 0.05,
            "freshness_p99_limit_s": 3.0,
            "growth": 1.5,
            "resolution": 1.1,
        },
        "step_s": 20.0,
        "startup_s": 30.0,
        "lead_in": _step("lead-in", 2_000.0, "held", 0.5, 1.6),
        "steps": [
            _step("fixed", 1_000.0, "held", 0.4, 0.8),
            _step("fixed", 10_000.0, "held", 0.7, 1.4),
            _step("fixed", 50_000.0, "held", 1.2, 2.5),
            _step("search", 75_000.0, "failed", 6.0, 12.0, lag_growth_per_s=9_000.0),
            _step("search", 61_237.0, "held", 1.5, 2.9),
            _step("search", 67_800.0, "failed", 3.0, 5.0),
        ],
        "records_total": 5_301_000,
        "peak_rss_mb": 1_500.0,
        "reconciliation": {"ok": True, "checks": {}, "differences": []},
        "time_split": {"batches": 40, "triggerExecution": 80_000, "addBatch": 70_000, "foreach_spark": 30_000,
                       "foreach_warehouse": 38_000, "walCommit": 2_000, "first_batch_ms": 12_000,
                       "first_batch_records": 1_000},
    }  # fmt: skip
    result["P_floor"] = {
        "job": "Kafka source -> foreachBatch recording event ids and times (rtap_bench.floor)",
        "step_s": 20.0,
        "startup_s": 25.0,
        "lead_in": _floor_step(2_000.0, 0.3, 0.9),
        "steps": [
            _floor_step(1_000.0, 0.3, 0.6),
            _floor_step(10_000.0, 0.35, 0.5),
            _floor_step(50_000.0, 0.6, 1.1),
        ],
        "peak_rss_mb": 900.0,
        "time_split": {"batches": 100, "triggerExecution": 30_000, "addBatch": 12_000, "first_batch_ms": 4_000,
                       "first_batch_records": 1_000},
    }  # fmt: skip
    result["freshness_vs_floor"] = against_floor(result["P_sustained"]["steps"], result["P_floor"]["steps"])
    result["P_spark_progress"] = {
        "batches": 5,
        "triggerExecution": 18_000,
        "addBatch": 17_500,
        "first_batch_ms": 12_000,
        "first_batch_records": 200,
    }
    result.update(
        command="rtap bench --events 1000 --repeats 2",
        when="2026-01-01T00:00:00+00:00",
        machine={"cpus": 2, "python": "3.12", "load_average_1m_before": 1.0, "load_average_1m_after": 2.0},
        records_in_topic=1000,
        partitions=6,
        repeats=2,
        spark_master="local[2]",
        batch_records=200,
        peak_rss_mb={"broker": 400.0, "job": 900.0, "live_stack": 2_100.0, "floor_job": 900.0, "stack": 2_100.0},
        ratios={
            "P_over_B3": 27_500 / 55_000,
            "P_over_K": None,
            "P1_over_B1": 0.19,
            "P_over_B4": 0.02,
            "P_sustained_over_B3": 61_237 / 55_000,
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
    assert "| B3 | Spark Kafka source -> noop sink (steady state) | 55,000 | 50,000 .. 60,000 | 40.0 |" in text
    assert "P/B3 **0.50**" in text
    assert "P/K **n/a**" in text
    assert "Shutdown was called" in text
    assert "`rtap bench --events 1000 --repeats 2`" in text
    assert "**passed**" in text
    assert "P sustained/B3 **1.11**" in text
    assert "Whole drains, first batch included: B3 40,000 records/s, P 20,000 records/s" in text


def test_markdown_reports_fixed_rate_freshness_the_search_and_the_time_split() -> None:
    text = markdown(_result("not run"))
    assert "| 10,000 | 9,990 | 0.01 s | 195,000 | 0.70 s | 1.40 s | 1.90 s | 0.90 s |" in text
    assert "| 4 | search | 75,000 | 74,925 | 0.01 s | 1,500,000 | 9 | 9,000 | 6.00 s / 12.00 s | failed: " in text
    assert (
        "**Sustainable rate (highest held): 61,237 events/s**; the ceiling lies between them (lowest failed: "
        "67,800 events/s)." in text
    )
    assert "(events, dead letters, late events, duplicates, sessions; 5,301,000 records): **passed**" in text
    # Shares of the sustained phase's trigger time; a phase the drain run (or the floor) lacks is n/a.
    assert (
        "| - the warehouse writes (beside the next addBatch when behind): dedup, inserts, commit | n/a "
        "| 38.0 s (48%) | n/a |" in text
    )
    assert "| addBatch: the whole foreachBatch call | 17.5 s (97%) | 70.0 s (88%) | 12.0 s (40%) |" in text
    assert "Live, per batch: 2,000 ms a trigger; 750 ms Spark's stage (parse and validate" in text
    assert "The floor: 300 ms a trigger." in text
    # Without their first batches: 4 batches of 800 records in 6 s, 39 of 5,300,000 records in 68 s.
    fixed, per_record_us = batch_cost(_result(None)) or (0.0, 0.0)
    assert 4 * fixed + 800 * per_record_us / 1000 == pytest.approx(6_000)
    assert 39 * fixed + 5_300_000 * per_record_us / 1000 == pytest.approx(68_000)
    assert f"**{fixed:,.0f} ms per batch + {per_record_us:,.1f} µs per record**" in text
    cycle = fixed / 1000 / (1 - 50_000 * per_record_us / 1e6)
    assert f"| 50,000 | {cycle:.2f} s | {2 * cycle:.2f} s | 2.50 s |" in text
    assert "The pinned chDB refuses `CREATE TABLE ... ENGINE = Kafka`: `Code: 49. Shutdown was called.`" in text


def test_the_lead_ins_figures_are_reported_beside_the_steps_and_absent_from_older_runs() -> None:
    text = markdown(_result(None))
    # The job's and the floor's lead-in, each after its start-up (20 s at 2,000 events/s in these fixtures).
    assert (
        "Stack start-up (launch -> warm-up committed): 30 s. After the start-up and before anything measured, not "
        "judged: a lead-in of 20 s at 2,000 events/s while the JVMs compile their hot code (freshness p50 0.50 s, "
        "p99 1.60 s)" in text
    )
    assert (
        "Floor start-up: 25 s. After the start-up and before anything measured, not judged: a lead-in of 20 s" in text
    )
    assert "(freshness p50 0.30 s, p99 0.90 s)" in text
    assert "(freshness p50 0.30 s, p99 0.90 s)" in text
    # Nothing judges the lead-in: no step row, no target reads it.
    assert "| lead-in |" not in text
    older = _result(None)
    del older["P_sustained"]["lead_in"], older["P_floor"]["lead_in"]
    assert "lead-in" not in markdown(older)


def test_a_search_that_never_failed_says_the_ceiling_was_not_found() -> None:
    result = _result(None)
    live = result["P_sustained"]
    live.update(ceiling_found=False, lowest_failed_records_per_s=None, producer_limit_records_per_s=84_000.0)
    text = markdown(result)
    assert "ceiling not found: the sender could not keep up at 84,000 events/s" in text
    assert (
        "| the sustainable-rate search finds the ceiling (a step that fails) | highest held 61,237; the sender "
        "fell behind at 84,000 | **no** |" in text
    )


def test_the_targets_table_says_what_was_met() -> None:
    rows = {target: (measured, met) for target, measured, met in targets(_result(None))}
    sustained = rows["sustained >= 50,000 events/s of realistic traffic, per-event freshness p99 <= 3 s at that rate"]
    assert sustained == ("highest rate held 61,237 events/s; at 50,000 events/s: p99 2.50 s, held", True)
    assert rows["full job draining a pre-filled topic >= 0.5 x B3 (steady state, same run)"] == (
        "P 27,500 / B3 55,000 records/s = 0.50",
        True,
    )
    quiet = "(on a quiet machine of this kind)"
    assert rows[f"per-event freshness p99 <= 1 s at 10,000 events/s {quiet}"] == ("p99 1.40 s (p50 0.70 s)", False)
    assert rows[f"per-event freshness p99 <= 1 s at 1,000 events/s {quiet}"] == ("p99 0.80 s (p50 0.40 s)", True)
    floor = "(same run, any machine)"
    assert rows[f"per-event freshness p99 <= 2 x the floor's p99 at 10,000 events/s {floor}"] == (
        "job p99 1.40 s / floor p99 0.50 s = 2.80",
        False,
    )
    assert rows[f"per-event freshness p99 <= 2 x the floor's p99 at 1,000 events/s {floor}"] == (
        "job p99 0.80 s / floor p99 0.60 s = 1.33",
        True,
    )
    assert rows["highest rate held live >= 0.4 x B3 (same run)"] == ("held 61,237 / B3 55,000 records/s = 1.11", True)
    assert rows["the sustainable-rate search finds the ceiling (a step that fails)"] == (
        "highest held 61,237, lowest failed 67,800 events/s",
        True,
    )
    steady = next(v for k, v in rows.items() if k.startswith("B3 (and P) measured in steady state"))
    assert steady[1] is True
    assert "batches per drain B3 [5, 5], P [5, 5]" in steady[0]
    text = markdown(_result(None))
    assert "## Targets (issues 14 and 22)" in text
    assert (
        "| per-event freshness p99 <= 1 s at 10,000 events/s (on a quiet machine of this kind) | p99 1.40 s "
        "(p50 0.70 s) | **no** |" in text
    )
    assert text.index("## Targets") < text.index("## Throughput against the baselines")


def test_targets_of_a_sender_that_fell_behind_or_a_failed_live_phase_are_not_met() -> None:
    result = _result(None)
    result["P_sustained"]["steps"][0].update(outcome="producer", reason="the sender fell 2.0 s behind")
    result["freshness_vs_floor"] = against_floor(result["P_sustained"]["steps"], result["P_floor"]["steps"])
    rows = {target: (measured, met) for target, measured, met in targets(result)}
    assert rows["per-event freshness p99 <= 1 s at 1,000 events/s (on a quiet machine of this kind)"] == (
        "p99 0.80 s (p50 0.40 s); the sender fell behind its schedule",
        False,
    )
    assert rows["per-event freshness p99 <= 2 x the floor's p99 at 1,000 events/s (same run, any machine)"] == (
        "job p99 0.80 s / floor p99 0.60 s = 1.33; the sender fell behind its schedule",
        False,
    )
    result["P_sustained"] = {"error": "the stream job exited with 1"}
    result["ratios"]["P_sustained_over_B3"] = None
    result["freshness_vs_floor"] = against_floor([], result["P_floor"]["steps"])
    failed = targets(result)
    assert [met for _, _, met in failed] == [False, False, True, False, False, False, False, False, True, True]
    assert failed[0][1] == "live phase failed"
    assert failed[1][1] == "live phase failed"
    text = markdown(result)
    assert "Failed: `the stream job exited with 1`" in text
    # The floor's figures stand without the job's.
    assert "| 1,000 | n/a | n/a | 0.30 s | 0.60 s | n/a | 998, 0.02 s | 19,500 | 60 |" in text


def test_the_floor_table_sets_the_job_against_the_pass_through() -> None:
    text = markdown(_result(None))
    assert "### Against the floor: a pass-through job, same run, same rates, same sender" in text
    assert "| 10,000 | 0.70 s | 1.40 s | 0.35 s | 0.50 s | 2.80 | 9,980, 0.02 s | 195,000 | 60 |" in text
    result = _result(None)
    result["P_floor"] = {"error": "the floor job exited with 1"}
    result["freshness_vs_floor"] = []
    assert "Failed: `the floor job exited with 1`" in markdown(result)


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
