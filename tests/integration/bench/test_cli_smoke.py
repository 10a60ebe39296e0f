"""`rtap bench --smoke`: the whole harness on a few thousand records, as CI runs it. No speed assertions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from tests.support.paths import REPO_ROOT

JARS = REPO_ROOT / "jars" / "lib"

MEASUREMENTS = (
    "B1_raw_produce",
    "P1_rtap_produce",
    "B2_raw_consume",
    "B3_spark_passthrough",
    "B4_warehouse_insert",
    "P_rtap_job",
)


# Built by `make bench`; where it exists the smoke runs K through it too.
K_PYTHON = REPO_ROOT / ".venv-k" / "bin" / "python"


def test_smoke_run_writes_every_figure_and_reconciles(tmp_path: Path) -> None:
    out = tmp_path / "results"
    k_args = ["--k-python", str(K_PYTHON)] if K_PYTHON.exists() else []
    run = subprocess.run(
        [sys.executable, "-m", "rtap", "bench", "--smoke", "--out", str(out), "--timeout", "300", *k_args],
        cwd=tmp_path,
        # Only the jars location from outside: no RTAP_* setting of the caller may leak into the run.
        env={**{k: v for k, v in os.environ.items() if not k.startswith("RTAP_")}, "RTAP_JARS_DIR": str(JARS)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    [json_path] = out.glob("bench-*.json")
    result = orjson.loads(json_path.read_bytes())

    assert result["reconciliation"]["ok"] is True
    assert result["records_in_topic"] >= 3_000
    for key in MEASUREMENTS:
        figure = result[key]
        assert figure["median_records_per_s"] > 0, key
        assert figure["min_records_per_s"] <= figure["median_records_per_s"] <= figure["max_records_per_s"], key
    # K either measured a drain or names the engine's error: never silently missing.
    k = result["K_kafka_engine"]
    assert ("median_records_per_s" in k) != bool(k["error"])
    assert set(result["ratios"]) == {
        "P_over_B3",
        "P_over_K",
        "P1_over_B1",
        "P_over_B4",
        "P_sustained_over_B3",
        "P_sustained_over_K",
    }
    # B3 and P: timed in steady state, over the batches after the first.
    for key in ("B3_spark_passthrough", "P_rtap_job"):
        assert min(result[key]["batches"]) >= 2, key
        assert result[key]["whole"]["median_records_per_s"] > 0, key
    # The live phase (rtap up): the fixed rate, then one search step; per-event freshness of every stored event;
    # exact.
    live = result["P_sustained"]
    assert live["stack"] == "rtap up --no-generator"
    assert [step["kind"] for step in live["steps"]] == ["fixed", "search"]
    for step in live["steps"]:
        assert step["records"] > 0
        assert step["outcome"] in {"held", "failed", "producer"}
        assert step["reason"]
        assert step["achieved_rate"] > 0
        assert step["events_missing"] == 0
        assert step["freshness"]["events"] > 0
        assert step["freshness"]["p50_s"] > 0
    assert isinstance(live["ceiling_found"], bool)
    assert live["reconciliation"]["ok"] is True, live["reconciliation"]["differences"]
    assert live["reconciliation"]["checks"]["late_events"]["expected"] > 0  # the dirt was there
    assert live["reconciliation"]["checks"]["duplicates"]["expected"] > 0
    assert live["time_split"]["batches"] > 0
    assert live["time_split"]["foreach_warehouse"] > 0  # the job's line per batch, read from rtap up's log
    # The floor: at the fixed rate, the same events as the job's step, and the two side by side.
    floor = result["P_floor"]
    [floor_step] = floor["steps"]
    assert floor_step["rate"] == live["steps"][0]["rate"]
    assert floor_step["events_missing"] == 0
    assert floor_step["freshness"]["p99_s"] > 0
    assert floor["time_split"]["batches"] > 0
    [compared] = result["freshness_vs_floor"]
    assert compared["p99_over_floor"] > 0
    assert result["P_spark_progress"]["addBatch"] > 0
    assert result["peak_rss_mb"]["broker"] > 0
    assert result["peak_rss_mb"]["job"] > 0
    assert result["peak_rss_mb"]["live_stack"] > result["peak_rss_mb"]["floor_job"] > 0
    assert result["P_rtap_job"]["median_job_rows_per_s"] > 0
    report = (out / "bench.md").read_text()
    assert report.startswith("# rtap bench")
    assert "## Targets (issues 14 and 22)" in report
    assert "### Against the floor" in report
    assert (out / "bench.png").stat().st_size > 0
