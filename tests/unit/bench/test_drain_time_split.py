"""Where a job's time went: Spark's progress events from its event log plus the job's per-batch log lines."""

from __future__ import annotations

from pathlib import Path

import orjson
from rtap_bench.drain import SPARK_EVENTS, time_split

PROGRESS = "org.apache.spark.sql.streaming.StreamingQueryListener$QueryProgressEvent"


def test_time_split_sums_progress_phases_and_the_foreach_batch_split(tmp_path: Path) -> None:
    log_dir = tmp_path / SPARK_EVENTS / "eventlog_v2_local-1"
    log_dir.mkdir(parents=True)
    events = [
        {"Event": "SparkListenerJobStart", "Job ID": 0},
        {
            "Event": PROGRESS,
            "progress": {
                "numInputRows": 100,
                "durationMs": {"addBatch": 900, "walCommit": 40, "triggerExecution": 1000},
            },
        },
        {"Event": PROGRESS, "progress": {"durationMs": {"addBatch": 1900, "walCommit": 60, "triggerExecution": 2000}}},
    ]
    (log_dir / "events_1_local-1").write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
    (log_dir / ".events_1_local-1.crc").write_bytes(b"\x00\x01")  # Hadoop's checksum files are skipped
    (tmp_path / "stream.log").write_text(
        "2026-11-29 09:24:44,062 INFO rtap.stream: Spark warmed up in 98.3 s\n"
        "2026-11-29 09:25:01,000 INFO rtap.stream: batch 0: 100 records -> 97 events, 1 duplicates, 0 late, "
        "2 dead letters in 880 ms (spark 300 ms, warehouse 580 ms, lag 0)\n"
        "2026-11-29 09:25:03,000 INFO rtap.stream: batch 1: 300 records -> 300 events, 0 duplicates, 0 late, "
        "0 dead letters in 1850 ms (spark 700 ms, warehouse 1150 ms, lag 12)\n"
    )
    assert time_split(tmp_path) == {
        "batches": 2,
        "first_batch_ms": 1000,
        "first_batch_records": 100,
        "addBatch": 2800,
        "walCommit": 100,
        "triggerExecution": 3000,
        "foreach_spark": 1000,
        "foreach_warehouse": 1730,
    }


def test_time_split_of_a_job_without_logs_is_empty(tmp_path: Path) -> None:
    assert time_split(tmp_path) == {}
