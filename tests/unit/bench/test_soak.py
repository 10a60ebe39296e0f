"""The soak's computations: its rate, its start across an hour, the per-minute table and the verdicts (no services)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rtap_bench.soak import (
    HOUR_MARGIN_S,
    flatness,
    freshness_verdict,
    hour_boundaries,
    hour_margin,
    keep_logs,
    markdown,
    minute_rows,
    parse_duration,
    plan_start,
    soak_rate,
)

from rtap.errors import ConfigError

# 12:58:30 UTC: a 3-minute run from here crosses 13:00 in its second minute.
START = datetime(2026, 12, 3, 12, 58, 30, tzinfo=UTC).timestamp()
HOUR = datetime(2026, 12, 3, 13, 0, tzinfo=UTC).timestamp()


def test_durations_are_whole_minutes() -> None:
    assert parse_duration("30m") == 1_800
    assert parse_duration("2h") == 7_200
    assert parse_duration("180s") == parse_duration("180") == 180
    for bad in ("90s", "1m", "2.5m", "soon", ""):
        with pytest.raises(ConfigError, match="--duration"):
            parse_duration(bad)


def test_the_rate_is_a_share_of_the_highest_rate_the_search_held() -> None:
    assert soak_rate(50_000.0) == pytest.approx(40_000.0)
    with pytest.raises(ConfigError, match="give one with --rate"):
        soak_rate(None)


def test_a_run_that_would_not_cross_an_hour_waits_until_one_falls_inside_it() -> None:
    thirty = 1_800.0
    # At 12:10 a 30-minute run would end at 12:40: it starts at 12:35 and 13:00 falls 25 minutes in.
    at_1210 = HOUR - 50 * 60
    start = plan_start(at_1210, thirty)
    assert start == HOUR - thirty + HOUR_MARGIN_S
    assert hour_boundaries(start, thirty) == [HOUR]
    # At 12:45 it can start at once (13:00 is 15 minutes in); at 12:56 13:00 is too close to the start, so the
    # run waits for 14:00.
    assert plan_start(HOUR - 15 * 60, thirty) == HOUR - 15 * 60
    assert plan_start(HOUR - 4 * 60, thirty) == HOUR + 3_600 - thirty + HOUR_MARGIN_S
    with pytest.raises(ConfigError, match="cannot have an hour boundary"):
        plan_start(at_1210, 2 * HOUR_MARGIN_S - 1)
    # A short check run keeps the boundary a sixth of its length from either end.
    assert hour_margin(1_800) == HOUR_MARGIN_S
    assert hour_margin(180) == 30
    assert plan_start(HOUR - 100, 180, hour_margin(180)) == HOUR - 100
    assert plan_start(HOUR - 20, 180, hour_margin(180)) == HOUR + 3_600 - 150


def test_hour_boundaries_inside_a_run() -> None:
    assert hour_boundaries(START, 180) == [HOUR]
    assert hour_boundaries(HOUR, 120) == []  # a run that starts on the hour does not cross it
    assert hour_boundaries(HOUR - 3_600 * 1.5, 3_600) == [HOUR - 3_600]  # 11:30 to 12:30
    assert hour_boundaries(HOUR - 10, 7_200) == [HOUR, HOUR + 3_600]


def _fresh(p99: float | None, events: int = 1_000) -> dict[str, Any]:
    if p99 is None:
        return {"events": 0, "p50_s": None, "p99_s": None, "max_s": None, "last_stored": None}
    return {"events": events, "p50_s": p99 / 2, "p99_s": p99, "max_s": p99 + 0.3, "last_stored": START}


def test_the_minute_table_joins_freshness_batches_memory_and_the_sender() -> None:
    samples: list[dict[str, Any]] = [
        {"t": START + 5, "stack_mb": 2_000.0, "sender_mb": 60.0, "cpu_jiffies": (10_000, 100)},
        {"t": START + 55, "stack_mb": 2_100.0, "sender_mb": 61.0, "cpu_jiffies": (20_000, 2_600)},
        {"t": START + 65, "stack_mb": 2_050.0, "sender_mb": 61.0, "cpu_jiffies": (22_000, 2_700)},
        {"t": START + 70, "stack_mb": None, "sender_mb": 61.0},  # the tree could not be read then
    ]
    batches = {0: (150, 380.5, 900.0, 60_000, 4_000), 2: (140, 410.0, 1_200.0, 59_000, 5_000)}
    rows = minute_rows(START, 3, [_fresh(0.9), _fresh(1.0), _fresh(1.1)], batches, samples, [0.01, 0.2])
    assert [row["minute"] for row in rows] == [1, 2, 3]
    assert [row["hour_boundary"] for row in rows] == [False, True, False]  # 13:00:00 is in 12:59:30-13:00:30
    assert rows[0] == {
        "minute": 1,
        "start": "2026-12-03T12:58:30+00:00",
        "hour_boundary": False,
        "events": 1_000,
        "p50_s": 0.45,
        "p99_s": 0.9,
        "max_s": pytest.approx(1.2),
        "batches": 150,
        "batch_mean_ms": 380.5,
        "batch_max_ms": 900.0,
        "input_rows": 60_000,
        "max_kafka_lag": 4_000,
        "stack_rss_mb": 2_100.0,
        "steal": 0.25,  # 2,500 of the machine's 10,000 ticks in the minute went to another tenant
        "sender_behind_s": 0.01,
    }
    # No batch finished in minute 2, no RSS sample in minute 3, the sender's minutes ran out.
    assert (rows[1]["batches"], rows[1]["batch_mean_ms"], rows[1]["max_kafka_lag"]) == (0, None, None)
    assert rows[1]["stack_rss_mb"] == 2_050.0
    assert rows[1]["steal"] is None  # one reading in the minute: no span to measure
    assert (rows[2]["stack_rss_mb"], rows[2]["sender_behind_s"]) == (None, None)


def _rows(p99s: list[float | None]) -> list[dict[str, Any]]:
    return minute_rows(START, len(p99s), [_fresh(p) for p in p99s], {}, [], [])


def test_every_minute_within_3_s_and_the_last_within_1_5_x_the_second_passes() -> None:
    verdict = freshness_verdict(_rows([2.9, 1.0, 1.2, 1.4, 1.5]))
    assert verdict == {
        "passed": True,
        "reasons": [],
        "last_over_second": pytest.approx(1.5),
        "worst_minute": 1,
        "worst_p99_s": 2.9,
    }


def test_a_slow_minute_or_a_last_minute_that_drifted_fails() -> None:
    slow = freshness_verdict(_rows([1.0, 1.0, 3.2, 1.1]))
    assert not slow["passed"]
    assert slow["reasons"] == ["minute 3: p99 3.20 s > 3 s"]
    drifted = freshness_verdict(_rows([1.0, 1.0, 1.3, 1.6]))
    assert not drifted["passed"]
    assert drifted["reasons"] == ["the last minute's p99 1.60 s is 1.60 x the second's 1.00 s (> 1.5)"]
    empty = freshness_verdict(_rows([1.0, None, 1.0]))
    assert empty["reasons"] == ["minute 2: no event stored"]
    assert empty["last_over_second"] is None
    assert freshness_verdict(_rows([1.0]))["reasons"] == [
        "fewer than two minutes: no second minute to compare the last with"
    ]


def test_memory_is_flat_when_the_last_third_stays_within_10_percent_of_the_middle() -> None:
    flat = flatness([1_000.0, 1_200.0, 1_400.0, 1_400.0, 1_500.0, 1_500.0])
    assert flat is not None
    assert flat["last_vs_middle"] == pytest.approx(1_500 / 1_400 - 1, abs=1e-4)
    assert flat["flat"]
    growing = flatness([1_000.0, 1_000.0, 1_000.0, 1_000.0, 1_200.0, 1_200.0])
    assert growing is not None
    assert not growing["flat"]
    assert flatness([1_000.0, 1_000.0]) is None


def _result(rate_from: str) -> dict[str, Any]:
    minutes = _rows([1.1, 1.0, 1.2])
    search = {
        "sustainable_records_per_s": 50_000.0,
        "step_s": 20.0,
        "steps": [{"rate": 10_000.0, "outcome": "held", "freshness": {"p99_s": 0.9}},
                  {"rate": 50_000.0, "outcome": "held", "freshness": {"p99_s": 2.5}},
                  {"rate": 75_000.0, "outcome": "failed", "freshness": {"p99_s": None}}],
    }  # fmt: skip
    return {
        "command": "python -m bench.soak --duration 3m",
        "when": "2026-12-03T13:05:00+00:00",
        "machine": {"cpus": 2, "load_average_1m_before": 1.0, "load_average_1m_after": 2.5},
        "stack": "rtap up --no-generator",
        "spark_master": "local[*]",
        "rate": 40_000.0,
        "rate_from": rate_from,
        "seconds": 180.0,
        "started": "2026-12-03T12:58:30+00:00",
        "hour_boundaries": [{"at": "2026-12-03T13:00:00+00:00", "minute": 2}],
        "search": search if rate_from == "search" else None,
        "lead_in": {"rate": 2_000.0, "records": 60_000, "freshness": {"p50_s": 0.6, "p99_s": 1.4}},
        "sent": {"records": 7_200_000, "valid": 7_000_000, "achieved_rate": 39_990.0, "producer_max_behind_s": 0.2},
        "minutes": minutes,
        "freshness": freshness_verdict(minutes),
        "events_missing": 0,
        "memory": {"rule": "mean RSS of the last third <= (1 + 0.1) x the middle third's",
                   "stack": flatness([2_000.0, 2_100.0, 2_150.0]), "sender": None},
        "peak_rss_mb": 2_600.0,
        "reconciliation": {"ok": True, "checks": {}, "differences": []},
        "passed": True,
    }  # fmt: skip


def test_the_report_has_the_command_the_rate_the_minutes_and_the_verdicts() -> None:
    text = markdown(_result("search"))
    assert text.startswith("# Soak: 3 minutes of realistic traffic against `rtap up`")
    assert "Command: `python -m bench.soak --duration 3m`" in text
    assert (
        "at **40,000 events/s** (80% of 50,000 events/s, the highest rate this run's search held (20 s steps: "
        "10,000 held (p99 0.90 s), 50,000 held (p99 2.50 s), 75,000 failed (p99 n/a)))" in text
    )
    assert (
        "Hour boundaries: 2026-12-03T13:00:00+00:00 in minute 2. After the start-up and before anything measured, "
        "not judged: a lead-in of 30 s at 2,000 events/s while the JVMs compile their hot code (freshness p50 0.60 s, "
        "p99 1.40 s)" in text
    )
    assert "| 2 (hour) | 12:59:30 | 1,000 | 0.50 s | 1.00 s | 1.30 s | 0 | n/a | n/a | n/a | n/a | n/a |" in text
    assert "**passed** (worst minute 3: p99 1.20 s; last / second 1.20)" in text
    assert "2,100 -> 2,150 MiB (+2.4%): flat" in text
    assert text.rstrip().endswith("Soak: **passed**.")
    given = _result("given")
    given.update(hour_boundaries=[], passed=False)
    text = markdown(given)
    assert "at **40,000 events/s** (given)" in text
    assert "Hour boundaries: none inside the run." in text
    assert "Soak: **FAILED**." in text


def test_the_report_gives_disk_per_record_for_sizing() -> None:
    result = _result("given")
    tables = {
        "events": {"rows": 900, "compressed_bytes": 90_000, "uncompressed_bytes": 400_000},
        "event_ids": {"rows": 900, "compressed_bytes": 18_000, "uncompressed_bytes": 30_000},
    }
    result["disk"] = {
        "records": 1_000,
        "kafka_bytes": 350_000,
        "warehouse_bytes": 200_000,
        "kafka_bytes_per_record": 350.0,
        "warehouse_bytes_per_record": 200.0,
        "tables": tables,
    }
    text = markdown(result)
    assert "Disk per record sent (1,000 records, after the stack stopped): Kafka's log directory 350 bytes" in text
    assert (
        "the warehouse's directory 200 bytes; compressed bytes per record of the largest tables: "
        "events 90, event_ids 18." in text
    )


def test_a_search_that_held_nothing_is_reported_with_its_steps() -> None:
    result = _result("search")
    for key in ("rate", "rate_from", "minutes", "freshness", "sent", "hour_boundaries", "memory", "reconciliation"):
        del result[key]
    result.update(error="the search held no rate, so there is no rate to soak at (give one with --rate)", passed=False)
    text = markdown(result)
    assert (
        "Not run: the search held no rate, so there is no rate to soak at (give one with --rate). The search "
        "(20 s steps: 10,000 held (p99 0.90 s)," in text
    )
    assert text.rstrip().endswith("Soak: **FAILED**.")


def test_a_failed_soak_keeps_the_stacks_and_the_brokers_logs(tmp_path: Path) -> None:
    data = tmp_path / "rtap-soak-x"
    for name in ("logs/rtap-up.log", "logs/collector.log", "kafka/kafka.log", "kafka/kafka.log.1"):
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        (data / name).write_text(name)
    (data / "kafka" / "data").mkdir()
    (data / "kafka" / "data" / "00000000000000000000.log").write_text("records, not a log")
    (data / "chdb").mkdir()
    kept = keep_logs(data, tmp_path / "out" / "soak-failed-logs")
    assert sorted(p.relative_to(tmp_path / "out" / "soak-failed-logs").as_posix() for p in kept) == [
        "kafka/kafka.log",
        "kafka/kafka.log.1",
        "logs/collector.log",
        "logs/rtap-up.log",
    ]
    assert all(p.read_text() == p.relative_to(p.parents[1]).as_posix() for p in kept)
