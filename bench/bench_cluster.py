"""Cluster benchmark: the stream job's throughput on a Spark standalone cluster with one and with two workers.

    nice -n 5 .venv/bin/python bench/bench_cluster.py [--records 200000] [--repeats 2]

One three-broker KRaft cluster (replication 3, min.insync.replicas 2) holds one pre-filled topic, produced once
with the seeded dirty generator. Each run starts a fresh Spark standalone cluster (a master and N workers of
one core each) and ``python -m rtap stream`` with a fresh data directory, so it drains the whole topic from the
beginning; the same job in ``local[2]`` mode on the same topic is the reference, measured in the same run.
Every run is reconciled against the produced truth. Per run: drain rate (first batch started -> all input
committed), start-up, the driver's Spark vs warehouse time (from the job's per-batch log line) and the CPU
seconds of the driver's process tree and of each worker's tree (worker daemon + executor).

Writes bench/results/cluster.json and bench/results/cluster.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rtap_bench.drain import running_job, wait_committed
from rtap_bench.procfs import tree_cpu_s

from rtap.generate import GroundTruth
from rtap.ingest.producer import produce_run
from rtap.ingest.topics import ensure_topics
from rtap.ops.reconcile import observe, reconcile
from rtap.runtime.cluster import ClusterLayout, KafkaCluster, SparkStandalone
from rtap.settings import Settings, StreamSettings
from rtap.warehouse import create_client

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
RUN_TIMEOUT_S = 900.0
BATCH_LINE = re.compile(r"\(spark (\d+) ms, warehouse (\d+) ms")


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run_job(settings: Settings, expected: int, truth: GroundTruth, workers: list[int]) -> dict[str, Any]:
    """One drain of the topic by ``python -m rtap stream``; stopped with SIGTERM once all input is committed."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.data_dir / "stream.log"
    load_before = load()
    launched = time.time()
    with running_job(settings) as process:
        worker_cpu_before = [tree_cpu_s(pid) for pid in workers]
        progress = wait_committed(settings, process, expected, RUN_TIMEOUT_S)
        driver_cpu = tree_cpu_s(process.pid)
        worker_cpu = [
            round(tree_cpu_s(pid) - before, 1) for pid, before in zip(workers, worker_cpu_before, strict=True)
        ]
        load_after = load()
    rows, batches, first_start, last_finish, _ = progress
    drain_s = float(last_finish) - float(first_start)
    split = [tuple(map(int, m.groups())) for m in BATCH_LINE.finditer(log_path.read_text(errors="replace"))]
    with create_client(settings) as client:
        report = reconcile(truth, observe(client, topic=settings.kafka.topic))
    return {
        "records": int(rows),
        "batches": int(batches),
        "drain_s": round(drain_s, 2),
        "records_per_s": round(int(rows) / drain_s, 1),
        "startup_s": round(float(first_start) - launched, 1),
        "driver_spark_ms": sum(s for s, _ in split),
        "driver_warehouse_ms": sum(w for _, w in split),
        "driver_cpu_s": round(driver_cpu, 1),
        "worker_cpu_s": worker_cpu,
        "reconciled": report.ok,
        "failed_checks": [check.name for check in report.failed],
        "load_before": load_before,
        "load_after": load_after,
    }


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Cluster benchmark: the stream job on 1 vs 2 Spark standalone workers",
        "",
        f"`{result['command']}` at {result['started']} on {result['machine']}.",
        f"{result['records']:,} records (seeded dirty generator) pre-filled on a 3-broker KRaft cluster "
        "(replication 3, min.insync.replicas 2); every worker offers 1 core and 1 GiB; each run drains the topic "
        "from the beginning with a fresh data directory and is reconciled against the truth.",
        f"Load average (1, 5, 15 min) at the start: {result['load_start']}, at the end: {result['load_end']}.",
        "",
        "| mode | runs | drain rec/s (median) | drain s | start-up s | batches | driver Spark / warehouse ms "
        "| driver CPU s | worker CPU s | reconciled | load before -> after |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, runs in result["modes"].items():
        for i, run in enumerate(runs):
            lines.append(
                f"| {mode} | {i + 1}/{len(runs)} | {run['records_per_s']:,.0f} | {run['drain_s']} | {run['startup_s']} "
                f"| {run['batches']} | {run['driver_spark_ms']:,} / {run['driver_warehouse_ms']:,} "
                f"| {run['driver_cpu_s']} | {run['worker_cpu_s']} | {'yes' if run['reconciled'] else 'NO'} "
                f"| {run['load_before'][0]} -> {run['load_after'][0]} |"
            )
    lines += ["", "Medians (records/s): " + ", ".join(f"{m} {v:,.0f}" for m, v in result["medians"].items()), ""]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--no-local", action="store_true", help="skip the local[2] reference")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="rtap-bench-cluster-"))
    started = datetime.now(UTC)
    load_start = load()
    try:
        base = Settings(data_dir=root / "base", jars_dir=REPO / "jars" / "lib")
        layout = ClusterLayout.on_free_ports(brokers=3, workers=1)
        with KafkaCluster(base, layout, root / "kafka") as kafka_cluster:
            name = f"bench-cluster-{uuid.uuid4().hex[:8]}"
            kafka = kafka_cluster.kafka_settings().model_copy(
                update={"topic": f"{name}.events", "dlq_topic": f"{name}.dlq"}
            )
            settings = base.model_copy(update={"kafka": kafka})
            ensure_topics(kafka)
            produced_at = time.perf_counter()
            report = produce_run(settings, rate=0, count=args.records, seed=17)
            produce_s = time.perf_counter() - produced_at
            if report.failed:
                raise RuntimeError(f"{report.failed} records were not delivered")
            truth = GroundTruth.from_json(report.truth_path.read_bytes())
            expected = truth.totals().produced
            print(f"pre-filled {expected} records in {produce_s:.0f} s", flush=True)

            modes: dict[str, list[dict[str, Any]]] = {}
            plan = ([] if args.no_local else ["local[2]"]) + [f"{n} worker" for n in args.workers.split(",")]
            for repeat in range(args.repeats):
                for mode in plan:
                    run_dir = root / f"run-{mode.replace(' ', '-').replace('[', '').replace(']', '')}-{repeat}"
                    if mode.startswith("local"):
                        run_settings = settings.model_copy(
                            update={"data_dir": run_dir, "stream": StreamSettings(master=mode)}
                        )
                        run = run_job(run_settings, expected, truth, [])
                    else:
                        workers = int(mode.split()[0])
                        spark_layout = ClusterLayout.on_free_ports(brokers=1, workers=workers)
                        with SparkStandalone(spark_layout, run_dir / "spark", worker_cores=1) as spark:
                            run_settings = settings.model_copy(
                                update={"data_dir": run_dir, "stream": StreamSettings(master=spark.master_url)}
                            )
                            pids = [pid for n, pid in spark.pids().items() if n != "spark-master" and pid]
                            run = run_job(run_settings, expected, truth, pids)
                    modes.setdefault(mode, []).append(run)
                    print(mode, json.dumps(run), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    result = {
        "command": "nice -n 5 .venv/bin/python bench/bench_cluster.py " + " ".join(sys.argv[1:]),
        "started": started.isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        "records": expected,
        "produce_s": round(produce_s, 1),
        "load_start": load_start,
        "load_end": load(),
        "modes": modes,
        "medians": {m: median([r["records_per_s"] for r in runs]) for m, runs in modes.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cluster.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "cluster.md").write_text(markdown(result))
    print(markdown(result))
    return 0 if all(r["reconciled"] for runs in modes.values() for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
