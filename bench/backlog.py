"""A backlog after downtime: millions of records waiting in the topic, then `rtap up` with its default settings.

    .venv/bin/python -m bench.backlog [--records 5000000]

Issue #14: the job must drain a backlog of at least 5 million records with the default settings and the
default driver memory, at its full rate, with no error and no manual step, and the local stack must stay
under 4 GB of memory meanwhile. This script makes that situation and measures it:

1. a private data directory and free loopback ports (nothing here meets a running stack);
2. `rtap kafka start`, `rtap produce --rate 0 --count N` (the generator's default dirt: duplicates,
   malformed and late records), `rtap kafka stop`: the downtime;
3. `rtap up --no-generator`, every setting at its default but the ports; the resident memory (VmRSS) of its
   whole process tree (rtap, the broker's JVM, Spark's JVM, Spark's Python workers) sampled every second;
4. done when the committed batches hold every record; then `rtap up` is stopped and `rtap reconcile` must
   find the warehouse equal to the generator's truth.

Reported: the drain rate over the batches (first batch started -> last batch committed) and over the wall
clock from `rtap up`'s start, the number and size of the batches, the job's restarts, the stack's peak RSS
(the largest sampled sum) and the reconciliation. Results: bench/results/backlog.json and backlog.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from rtap_bench.procfs import tree_rss_mb

from rtap.generate import GroundTruth
from rtap.runtime.ports import free_ports
from rtap.runtime.process import die_with_parent
from rtap.settings import KafkaSettings, Settings
from rtap.warehouse import create_client

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = REPO_ROOT / "bench" / "results"
LIMIT_MB = 4096
_BATCHES = """
SELECT count(), sum(input_rows), max(input_rows), toFloat64(min(started_at)), toFloat64(max(finished_at))
FROM {db}.pipeline_batches FINAL
"""


def rtap(env: dict[str, str], *args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rtap", *args], env=env, capture_output=True, text=True, timeout=timeout_s
    )


def committed(settings: Settings) -> tuple[int, int, int, float, float]:
    """(batches, records, largest batch, first start, last commit) through the job's read-only channel."""
    with create_client(settings, readonly=True) as client:
        count, records, largest, first, last = client.query_rows(_BATCHES)[0]
    return int(count), int(records or 0), int(largest or 0), float(first or 0), float(last or 0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5_000_000, help="records in the backlog")
    parser.add_argument("--timeout-s", type=float, default=1800.0, help="give up on the drain after this long")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where backlog.json and backlog.md go")
    args = parser.parse_args(argv)
    command = "python -m bench.backlog " + shlex.join(argv if argv is not None else sys.argv[1:])
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="rtap-backlog-") as tmp:
        broker, controller, dashboard, metrics = free_ports(4)
        env = {
            **os.environ,
            "RTAP_DATA_DIR": tmp,
            "RTAP_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{broker}",
            "RTAP_KAFKA_CONTROLLER_PORT": str(controller),
            "RTAP_DASHBOARD_PORT": str(dashboard),
            "RTAP_METRICS_PORT": str(metrics),
        }
        settings = Settings(
            data_dir=Path(tmp),
            kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{broker}", controller_port=controller),
        )
        started = rtap(env, "kafka", "start", timeout_s=300)
        if started.returncode != 0:
            sys.exit(f"rtap kafka start failed: {started.stderr.strip()}")
        fill_began = time.monotonic()
        produced = rtap(env, "produce", "--rate", "0", "--count", str(args.records), timeout_s=args.timeout_s)
        fill_s = time.monotonic() - fill_began
        rtap(env, "kafka", "stop", timeout_s=120)
        if produced.returncode != 0:
            sys.exit(f"rtap produce failed: {produced.stderr.strip()}")
        truth = GroundTruth.from_json((settings.paths.truth / "latest.json").read_bytes())
        result = drain(settings, env, args, truth.totals().produced)
        result["fill_s"] = round(fill_s, 1)
        reconciled = rtap(env, "reconcile", timeout_s=600)
        result["reconcile"] = {"exit_code": reconciled.returncode, "output": reconciled.stdout.strip()[-2000:]}
    result.update(
        command=command.strip(),
        when=datetime.now(UTC).isoformat(timespec="seconds"),
        machine={"cpus": os.cpu_count() or 0, "python": platform.python_version(), "load_before": load_before},
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "backlog.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    (args.out / "backlog.md").write_text(markdown(result))
    print(markdown(result))
    if reconciled.returncode != 0 or result["restarts"] or not result["drained"]:
        sys.exit(1)


def drain(settings: Settings, env: dict[str, str], args: argparse.Namespace, expected: int) -> dict[str, Any]:
    """Run `rtap up --no-generator` until its committed batches hold all ``expected`` records (the events
    produced and the generator's re-sent copies), sampling the memory of its process tree."""
    log_path = settings.data_dir / "up.log"
    with log_path.open("ab") as log:
        up = subprocess.Popen(
            [sys.executable, "-m", "rtap", "up", "--no-generator"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent(),
        )
    began = time.monotonic()
    peak_mb, samples, state = 0.0, 0, (0, 0, 0, 0.0, 0.0)
    try:
        while time.monotonic() - began < args.timeout_s:
            if up.poll() is not None:
                raise SystemExit(f"rtap up exited with {up.returncode}: {log_path.read_text()[-2000:]}")
            peak_mb = max(peak_mb, tree_rss_mb(up.pid) or 0.0)
            samples += 1
            try:
                state = committed(settings)
            except Exception:  # noqa: BLE001 - the stack is still starting: no channel, no tables yet
                state = (0, 0, 0, 0.0, 0.0)
            if state[1] >= expected:
                break
            time.sleep(1.0)
        wall_s = time.monotonic() - began
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=300)
    batches, records, largest, first, last = state
    job_state = settings.paths.run / "stream-job.json"
    restarts = orjson.loads(job_state.read_bytes()).get("restarts", 0) if job_state.exists() else 0
    return {
        "records": expected,
        "events_asked": args.records,
        "drained": records >= expected,
        "batches": batches,
        "largest_batch": largest,
        "drain_s": round(last - first, 1),
        "records_per_s": round(records / (last - first)) if last > first else None,
        "wall_s_from_up": round(wall_s, 1),
        "records_per_s_from_up": round(records / wall_s) if wall_s else None,
        "peak_rss_mb": round(peak_mb),
        "rss_samples": samples,
        "rss_limit_mb": LIMIT_MB,
        "restarts": restarts,
    }


def markdown(result: dict[str, Any]) -> str:
    within = "yes" if result["peak_rss_mb"] <= LIMIT_MB else "NO"
    return f"""# A {result["records"]:,}-record backlog under `rtap up` (default settings)

`{result["command"]}` on {result["when"]} ({result["machine"]["cpus"]} CPUs, load before
{result["machine"]["load_before"]:.2f}); the topic was filled while the stack was down (`rtap produce --rate 0`,
{result["fill_s"]} s), then `rtap up --no-generator` started with every setting at its default but the ports.

| what | figure |
|---|---:|
| drained, no manual step | {"yes" if result["drained"] else "NO"} |
| batches (largest) | {result["batches"]:,} ({result["largest_batch"]:,} records) |
| drain: first batch started -> last committed | {result["drain_s"]} s, {result["records_per_s"]:,} records/s |
| from `rtap up`'s start (Kafka, Spark start-up included) | {result["wall_s_from_up"]} s, \
{result["records_per_s_from_up"]:,} records/s |
| stream job restarts | {result["restarts"]} |
| peak RSS of the stack (rtap, broker JVM, Spark JVM, Python workers; sampled 1/s) | \
{result["peak_rss_mb"]:,} MiB (<= {LIMIT_MB:,}: {within}) |
| `rtap reconcile` against the generator's truth | {"exact" if result["reconcile"]["exit_code"] == 0 else "DIFFERS"} |
"""


if __name__ == "__main__":
    main()
