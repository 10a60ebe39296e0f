"""Time from ``rtap up`` to the first rows in ClickHouse, with the JVMs' class-data archives and without.

    .venv/bin/python -m bench.bench_startup [--repeats 3]

Each run is a real ``python -m rtap up`` (broker, warehouse, Spark job, dashboard, generator at 1,000
events/s) in a fresh temporary data directory on free ports, so a running stack is never touched. Every line
the stack prints is timestamped as it arrives; the milestones are the broker ready, the job's query started,
and the log line of micro-batch 0, which the job writes after the batch's rows are committed to ClickHouse.
Nothing polls the stack meanwhile: on 2 cores a poller's CPU would be part of the measurement.

Runs alternate ``RTAP_JVM_CLASS_SHARING=off`` (baseline) and ``on`` (the archives ``make install`` wrote);
medians and their ratio go to bench/results/startup.json and startup.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from rtap.runtime.jvm import ARCHIVES, archive_path
from rtap.runtime.ports import free_ports
from rtap.runtime.process import die_with_parent
from rtap.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results"
MILESTONES = {
    "broker_s": "Kafka broker on",
    "job_s": "Spark stream job running",
    "first_rows_s": "rtap.stream: batch 0:",
}
TIMEOUT_S = 180.0


def start_once(mode: str) -> dict[str, float]:
    """One ``rtap up`` until micro-batch 0 is committed; the seconds from launch to each milestone."""
    with tempfile.TemporaryDirectory(prefix="rtap-bench-startup-") as data_dir:
        kafka_port, controller_port, dashboard_port, metrics_port = free_ports(4)
        env = {
            **os.environ,
            "RTAP_DATA_DIR": data_dir,
            "RTAP_JARS_DIR": str(REPO_ROOT / "jars" / "lib"),
            "RTAP_KAFKA_PORT": str(kafka_port),
            "RTAP_KAFKA_CONTROLLER_PORT": str(controller_port),
            "RTAP_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_port}",
            "RTAP_DASHBOARD_PORT": str(dashboard_port),
            "RTAP_METRICS_PORT": str(metrics_port),
            "RTAP_JVM_CLASS_SHARING": mode,
            "PYTHONUNBUFFERED": "1",  # the ✓ lines go to a pipe: timestamp them when printed, not when flushed
        }
        seen: dict[str, float] = {}
        done = threading.Event()
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "rtap", "up", "--verbose"],  # the per-batch lines mark the first rows
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )

        def read() -> None:
            assert process.stdout is not None
            for raw in process.stdout:
                line = raw.decode(errors="replace")
                for name, marker in MILESTONES.items():
                    if name not in seen and marker in line:
                        seen[name] = time.monotonic() - started
                if "first_rows_s" in seen:
                    done.set()
            done.set()  # the stack exited

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            done.wait(TIMEOUT_S)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=120)
            reader.join(timeout=10)
        if set(seen) != set(MILESTONES):
            raise SystemExit(f"rtap up ({mode}) did not reach every milestone within {TIMEOUT_S:.0f} s: {seen}")
        return seen


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS, help="where startup.json and startup.md go")
    args = parser.parse_args(argv)
    settings = Settings(jars_dir=REPO_ROOT / "jars" / "lib")
    missing = [name for name in ARCHIVES if not archive_path(settings, name).is_file()]
    if missing:
        raise SystemExit(f"no class-data archive for {', '.join(missing)}: run `make install` first")

    load_before = os.getloadavg()[0]
    runs: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    for repeat in range(args.repeats):
        for mode in runs:
            runs[mode].append(start_once(mode))
            print(f"repeat {repeat + 1}, class sharing {mode}: {runs[mode][-1]}", flush=True)
    medians = {
        mode: {name: statistics.median(run[name] for run in results) for name in MILESTONES}
        for mode, results in runs.items()
    }
    report: dict[str, Any] = {
        "command": "python -m bench.bench_startup " + " ".join(argv if argv is not None else sys.argv[1:]),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "runs": runs,
        "median": medians,
        "ratio_on_off": {m: medians["on"][m] / medians["off"][m] for m in MILESTONES},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "startup.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    (args.out / "startup.md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict[str, Any]) -> str:
    labels = {"broker_s": "broker ready", "job_s": "job's query started", "first_rows_s": "first rows committed"}
    lines = [
        "# Start-up: `rtap up` to the first rows in ClickHouse",
        "",
        f"`{report['command'].strip()}` — {report['finished_at']}, {report['machine']['cpus']} CPUs, "
        f"load {report['load_before']} before / {report['load_after']} after. Seconds from launch (median of "
        f"{len(report['runs']['on'])} alternating runs each); baseline = the same run without the archives.",
        "",
        "| milestone | archives off (baseline) | archives on | on/off | every run, on |",
        "|---|---:|---:|---:|---|",
    ]
    for key, label in labels.items():
        runs_on = ", ".join(f"{r[key]:.1f}" for r in report["runs"]["on"])
        lines.append(
            f"| {label} | {report['median']['off'][key]:.1f} | {report['median']['on'][key]:.1f} | "
            f"{report['ratio_on_off'][key]:.2f} | {runs_on} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
