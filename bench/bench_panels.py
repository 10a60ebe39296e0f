"""Every dashboard panel's query over the live hour, after the job has stored an hour at 10,000 events/s.

    .venv/bin/python -m bench.bench_panels [--rate 10000] [--minutes 60] [--repeats 5]

A panel refreshed every 2 s whose query reads every event of its range costs more with every minute the job runs:
the benchmarks that run the job for a few minutes (bench_admission) cannot show it. Here one embedded ClickHouse
(chDB) with rtap's migrations gets ``--minutes`` of stored history at ``--rate`` events/s (``rtap_bench.history``:
straight into ``events``, whose views fill the states, sessions and ``event_ids``), then every panel of the shipped
dashboards runs over the page's default range (the last hour, ending now) as the dashboard runs it: the read-only
connection with the reader's limits (one thread), ``rtap.dashboard.api.run_panel``. Medians of ``--repeats`` after
one warm-up.

Beside them, in the same run on the same rows, the panels whose SQL issue 24 changed, as they were before
(``BEFORE``), each checked to give the same answer (active users over whole minutes; see dashboards.yaml). The
page's cost: the sum over panels of query time / refresh interval, the share of one core a live page keeps busy
when every refresh runs its query (the result cache shares it between viewers, never across refreshes).
Results: bench/results/panels.json and panels.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rtap_bench.history import fill_history
from rtap_bench.results import run_facts, write_results

from rtap.dashboard.api import run_panel
from rtap.dashboard.definition import Panel, load_definition, setting_parameters
from rtap.settings import Settings
from rtap.warehouse import WarehouseClient, create_client
from rtap.warehouse.migrate import apply_migrations

# The panels as they were before issue 24 read what they show (rtap c3d256c), with the answer each must match:
# active users then counted from the range's first millisecond, so the comparison reads the same whole minutes.
BEFORE = {
    "active_users": """
SELECT
    uniqExactIf(user_id, event_time >= toStartOfMinute({to:DateTime64(3,'UTC')} - INTERVAL 5 MINUTE)) AS last_5_min,
    uniqExact(user_id) AS in_range
FROM {db}.events
WHERE event_time >= toStartOfMinute({from:DateTime64(3,'UTC')}) AND event_time < {to:DateTime64(3,'UTC')}
""",
    "events_total": """
WITH
    (SELECT min(window_start) FROM {db}.events_1m FINAL
     WHERE window_start >= toStartOfMinute({from:DateTime64(3,'UTC')})
       AND window_start < {to:DateTime64(3,'UTC')}) AS first_window,
    (SELECT max(window_start) FROM {db}.events_1m FINAL
     WHERE window_start >= toStartOfMinute({from:DateTime64(3,'UTC')})
       AND window_start < {to:DateTime64(3,'UTC')}) AS last_window,
    (SELECT coalesce(minOrNull(event_time), first_window) FROM {db}.events
     WHERE event_time >= first_window AND event_time < first_window + INTERVAL 1 MINUTE) AS first_event,
    (SELECT coalesce(maxOrNull(event_time), last_window + INTERVAL 1 MINUTE) FROM {db}.events
     WHERE event_time >= last_window AND event_time < last_window + INTERVAL 1 MINUTE) AS last_event
SELECT sum(events) AS total_events,
       round(total_events / greatest(1, dateDiff('millisecond', first_event, last_event) / 1000), 1) AS per_second
FROM {db}.events_1m FINAL
WHERE window_start >= toStartOfMinute({from:DateTime64(3,'UTC')})
  AND window_start < {to:DateTime64(3,'UTC')}
""",
    "browser_events": """
SELECT event_time, event_type, page_url, product_id, user_id, session_id, event_id
FROM {db}.events FINAL
WHERE kafka_topic = {browser_topic:String}
  AND event_time >= {from:DateTime64(3,'UTC')} AND event_time < {to:DateTime64(3,'UTC')}
ORDER BY event_time DESC, event_id
LIMIT 20
""",
}


def timed(reader: WarehouseClient, panel: Panel, end: datetime, values: dict[str, Any], repeats: int) -> dict[str, Any]:
    """The panel over the hour before ``end``: median and spread of ``repeats`` runs after a warm-up, its rows."""
    durations: list[float] = []
    table, _ = run_panel(reader, panel, end - timedelta(hours=1), end, setting_values=values)  # the warm-up
    for _ in range(repeats):
        began = time.perf_counter()
        table, _ = run_panel(reader, panel, end - timedelta(hours=1), end, setting_values=values)
        durations.append((time.perf_counter() - began) * 1000)
    return {
        "ms": round(statistics.median(durations), 1),
        "min_ms": round(min(durations), 1),
        "max_ms": round(max(durations), 1),
        "rows": [[str(v) for v in row.values()] for row in table.to_pylist()],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=10_000, help="events per second of stored history")
    parser.add_argument("--minutes", type=int, default=60, help="minutes of history, ending now")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.minutes <= 0 or args.repeats <= 0:
        parser.error("--rate, --minutes and --repeats must be positive")
    definition = load_definition()
    end = datetime.now(UTC).replace(microsecond=0)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="rtap-bench-panels-") as tmp:
        settings = Settings(data_dir=Path(tmp))
        values = setting_parameters(settings)
        with create_client(settings) as writer:
            apply_migrations(writer)
            began = time.perf_counter()
            stored = fill_history(writer, end=end, minutes=args.minutes, rate=args.rate)
            fill_s = time.perf_counter() - began
            print(f"stored {stored:,} events in {fill_s:.0f} s", flush=True)
            with create_client(settings, readonly=True) as reader:
                for dashboard in definition.dashboards:
                    for panel in dashboard.panels:
                        row: dict[str, Any] = {
                            "dashboard": dashboard.id,
                            "panel": panel.id,
                            "refresh_s": panel.refresh_seconds,
                            **timed(reader, panel, end, values, args.repeats),
                        }
                        if panel.id in BEFORE:
                            before = panel.model_copy(update={"sql": BEFORE[panel.id]})
                            old = timed(reader, before, end, values, args.repeats)
                            if old["rows"] != row["rows"]:
                                sys.exit(f"{panel.id}: the panel and its query before disagree: {row} against {old}")
                            row["before_ms"] = old["ms"]
                            row["before_over_after"] = round(old["ms"] / row["ms"], 1)
                        print({k: v for k, v in row.items() if k != "rows"}, flush=True)
                        rows.append(row)
    for row in rows:
        row["row_count"] = len(row.pop("rows"))

    def page_cost(dashboard: str, key: str) -> float:
        """The share of one core the dashboard's page keeps busy at one query per panel refresh."""
        busy = sum(
            float(r.get(key, r["ms"])) / 1000 / float(r["refresh_s"]) for r in rows if r["dashboard"] == dashboard
        )
        return round(busy, 2)

    pages = {
        d.id: {"after": page_cost(d.id, "ms"), "before": page_cost(d.id, "before_ms")} for d in definition.dashboards
    }
    result: dict[str, Any] = {
        **run_facts("bench_panels", argv),
        "rate_events_per_s": args.rate,
        "minutes": args.minutes,
        "stored_events": stored,
        "fill_s": round(fill_s, 1),
        "panels": rows,
        "page_core_share": pages,
    }
    command = result["command"]
    lines = [
        "# Each dashboard panel over the live hour, after an hour of stored traffic",
        "",
        f"`{command}` ({result['at']}): {stored:,} events stored at {args.rate:,} events/s over the {args.minutes} "
        f"minutes before the measurement; each panel over the last hour as the dashboard runs it (read-only "
        f"connection, the reader's limits, one thread). Medians of {args.repeats} runs after a warm-up; load average "
        f"at the end {result['load_average_at_end']} on {result['machine']['cpus']} cores.",
        "",
        "| dashboard | panel | refreshed every | query ms (min .. max) | before issue 24's change: ms "
        "| before / after |",
        "|---|---|---:|---:|---:|---:|",
        *(
            f"| {r['dashboard']} | {r['panel']} | {r['refresh_s']} s | {r['ms']} ({r['min_ms']} .. {r['max_ms']}) "
            f"| {r.get('before_ms', '')} | {r.get('before_over_after', '')} |"
            for r in rows
        ),
        "",
        "A page's cost, the share of one core it keeps busy when each panel's query runs at every refresh: "
        + "; ".join(f"{d} {p['after']} (before: {p['before']})" for d, p in pages.items())
        + ". The result cache shares one query between viewers within its step, so this is what the first viewer "
        "costs; before, a page over an hour of 10,000 events/s asked for more work than the reader's one thread "
        "could do.",
    ]
    write_results("panels", result, lines)


if __name__ == "__main__":
    main()
