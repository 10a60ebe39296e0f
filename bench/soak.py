"""Soak: the producer and the stream job under sustained load for ten minutes; does their memory stay flat?

    .venv/bin/python -m bench.soak [--duration-s 600] [--rate 400] [--interval-s 5]   (make soak)

Starts a private LocalKafka (free loopback ports, temporary data dir) and ``rtap stream``; once the job has
processed a small priming run (Spark's start-up is not part of the load), ``rtap produce --rate R --duration D``
runs as a second process, and the resident set size (VmRSS) of each is sampled every few seconds: the
producer, and the job's process tree (the Python driver and Spark's JVM).
The rate is one the job sustains on this machine, so a growing backlog cannot pass for a leak; the
Kafka lag at the end is reported.

The rule for "memory stays flat", per process: split the samples of the load period into thirds; the
first third is warm-up (the JVM grows its heap, caches fill); memory is flat when the mean RSS of the last
third is at most 10 % above the mean of the middle third (``--tolerance``). A leak proportional to the
records processed grows the last third by as much as the middle one grew over the first, which this
catches at ten minutes for anything above ~2 % of the heap per minute.

After the load, the job drains, stops (SIGTERM), and both runs are reconciled with the generator's truth
(``rtap reconcile``). Results: bench/results/soak.json (every sample) and soak.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from rtap_bench.procfs import rss_mb, tree_rss_mb
from rtap_bench.produce import private_broker

from rtap.ingest.topics import ensure_topics
from rtap.settings import Settings, StreamSettings, child_environment
from rtap.warehouse import create_client

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results"
DRAIN_TIMEOUT_S = 900.0
PRIMING_EVENTS = 2_000


def wait_for(settings: Settings, job: subprocess.Popen[bytes], records: int, logs: Path) -> int:
    """Wait until the job has committed ``records`` input records; what it committed."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while (done := committed(settings)[0]) < records:
        if job.poll() is not None:
            raise SystemExit(f"the stream job exited with {job.returncode}; see {logs / 'stream.log'}")
        if time.monotonic() > deadline:
            raise SystemExit(f"the job committed {done} of {records} records in {DRAIN_TIMEOUT_S:.0f} s")
        time.sleep(2)
    return done


def committed(settings: Settings) -> tuple[int, int]:
    """(records in committed batches, Kafka lag of the newest batch), through the job's read-only channel."""
    try:
        with create_client(settings, readonly=True) as client:
            rows = client.query_rows(
                "SELECT sum(input_rows), argMax(kafka_lag, finished_at) FROM {db}.pipeline_batches FINAL"
            )
    except Exception:  # noqa: BLE001 - the job is still starting: no channel or no tables yet
        return 0, 0
    return int(rows[0][0] or 0), int(rows[0][1] or 0)


def flatness(samples: list[float], tolerance: float) -> dict[str, Any]:
    """The rule from the module docstring, on one process's samples of the load period."""
    third = len(samples) // 3
    first, middle, last = samples[:third], samples[third : 2 * third], samples[2 * third :]
    middle_mean, last_mean = statistics.fmean(middle), statistics.fmean(last)
    growth = last_mean / middle_mean - 1
    return {
        "samples": len(samples),
        "first_third_mean_mb": round(statistics.fmean(first), 1),
        "middle_third_mean_mb": round(middle_mean, 1),
        "last_third_mean_mb": round(last_mean, 1),
        "max_mb": round(max(samples), 1),
        "last_vs_middle": round(growth, 4),
        "flat": growth <= tolerance,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration-s", type=float, default=600.0, help="length of the load period")
    parser.add_argument("--rate", type=float, default=400.0, help="events per second (the job must keep up)")
    parser.add_argument("--interval-s", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--tolerance", type=float, default=0.10, help="allowed last-vs-middle growth")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where soak.json and soak.md go")
    args = parser.parse_args(argv)
    command = "python -m bench.soak " + shlex.join(argv if argv is not None else sys.argv[1:])
    load_before = os.getloadavg()[0]

    with private_broker("soak", REPO_ROOT / "jars" / "lib") as (broker, base):
        stream = StreamSettings(master="local[2]", trigger_interval_s=1.0, max_batch_records=20_000)
        settings = base.model_copy(update={"stream": stream})
        ensure_topics(settings.kafka)
        result = soak(settings, args, broker.pid())
    result.update(
        command=command.strip(),
        when=datetime.now(UTC).isoformat(timespec="seconds"),
        machine={
            "cpus": os.cpu_count() or 0,
            "python": platform.python_version(),
            "load_average_1m_before": load_before,
            "load_average_1m_after": os.getloadavg()[0],
        },
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    (args.out / "soak.md").write_text(markdown(result))
    print(markdown(result))
    return 0 if result["flat"] and result["reconciled"] else 1


def soak(settings: Settings, args: argparse.Namespace, broker_pid: int | None) -> dict[str, Any]:
    env = child_environment(settings)
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    rtap = [sys.executable, "-m", "rtap"]
    with (logs / "stream.log").open("ab") as job_log, (logs / "produce.log").open("ab") as produce_log:
        job = subprocess.Popen([*rtap, "stream"], env=env, stdout=job_log, stderr=subprocess.STDOUT)
        try:
            # A small priming run first, so that Spark's start-up (minutes on a busy machine) is not part of the
            # load period; the soak run starts in the next minute, so the two truths reconcile as one.
            subprocess.run(
                [*rtap, "produce", "--rate", "0", "--count", str(PRIMING_EVENTS), "--seed", "4"],
                env=env, stdout=produce_log, stderr=subprocess.STDOUT, check=True,
            )  # fmt: skip
            primed_at = datetime.now(UTC)
            prime_path = settings.paths.truth / "latest.json"
            prime_path = prime_path.rename(prime_path.with_name("priming.json"))
            priming = orjson.loads(prime_path.read_bytes())["produced"]
            wait_for(settings, job, priming, logs)
            boundary = primed_at.replace(second=0, microsecond=0) + timedelta(minutes=1, milliseconds=200)
            time.sleep(max(0.0, (boundary - datetime.now(UTC)).total_seconds()))
            producer = subprocess.Popen(
                [*rtap, "produce", "--rate", str(args.rate), "--duration", str(args.duration_s), "--seed", "5"],
                env=env, stdout=produce_log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            samples = sample(settings, job.pid, producer, broker_pid, args.interval_s)
            if producer.wait() != 0:
                raise SystemExit(f"the producer failed; see {logs / 'produce.log'}")
            truth_path = settings.paths.truth / "latest.json"
            produced = orjson.loads(truth_path.read_bytes())["produced"]
            done = wait_for(settings, job, priming + produced, logs)
            lag_at_end = samples[-1]["kafka_lag"] if samples else 0
        finally:
            job.terminate()
            job_code = job.wait(timeout=180)
    reconciled = subprocess.run(
        [*rtap, "reconcile", "--truth", str(prime_path), "--truth", str(truth_path)],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    load = [s for s in samples if s["producer_mb"] is not None]
    series = {
        name: [s[f"{name}_mb"] for s in load if s[f"{name}_mb"] is not None] for name in ("job", "producer", "broker")
    }
    verdicts = {name: flatness(values, args.tolerance) for name, values in series.items() if len(values) >= 3}
    return {
        "duration_s": args.duration_s,
        "rate": args.rate,
        "interval_s": args.interval_s,
        "tolerance": args.tolerance,
        "produced": produced,
        "processed": done - priming,
        "priming_records": priming,
        "kafka_lag_at_end": lag_at_end,
        "job_exit_code": job_code,
        "reconciled": reconciled.returncode == 0,
        "reconcile_output": reconciled.stdout[-4000:] + reconciled.stderr[-2000:],
        "rule": f"flat when mean RSS of the last third <= (1 + {args.tolerance}) x mean of the middle third",
        "verdicts": verdicts,
        "flat": {"job", "producer"} <= verdicts.keys() and all(verdicts[k]["flat"] for k in ("job", "producer")),
        "samples": samples,
    }


def sample(
    settings: Settings, job_pid: int, producer: subprocess.Popen[bytes], broker_pid: int | None, interval_s: float
) -> list[dict[str, Any]]:
    """RSS of the job tree, the producer and the broker every ``interval_s`` while the producer runs."""
    samples: list[dict[str, Any]] = []
    start = time.monotonic()
    while producer.poll() is None:
        samples.append(
            {
                "t_s": round(time.monotonic() - start, 1),
                "job_mb": tree_rss_mb(job_pid),
                "producer_mb": rss_mb(producer.pid),
                "broker_mb": None if broker_pid is None else rss_mb(broker_pid),
                "kafka_lag": committed(settings)[1],
                "load_1m": os.getloadavg()[0],
            }
        )
        time.sleep(interval_s)
    return samples


def markdown(result: dict[str, Any]) -> str:
    machine = result["machine"]
    rows = [
        f"| {name} | {v['first_third_mean_mb']:,.0f} | {v['middle_third_mean_mb']:,.0f} "
        f"| {v['last_third_mean_mb']:,.0f} | {v['max_mb']:,.0f} | {v['last_vs_middle']:+.1%} "
        f"| {'yes' if v['flat'] else '**no**'} |"
        for name, v in result["verdicts"].items()
    ]
    return "\n".join(
        [
            "# Soak: producer and stream job under sustained load",
            "",
            f"Command: `{result['command']}` ({result['when']}; {machine['cpus']} CPUs shared with other work; "
            f"1-min load average {machine['load_average_1m_before']:.1f} before, "
            f"{machine['load_average_1m_after']:.1f} after).",
            "",
            f"{result['duration_s']:.0f} s at {result['rate']:.0f} events/s: {result['produced']:,} records produced, "
            f"{result['processed']:,} processed by the job (Spark `local[2]`, chDB embedded), Kafka lag at the end "
            f"{result['kafka_lag_at_end']:,}; RSS sampled every {result['interval_s']:.0f} s.",
            "",
            f"Rule: {result['rule']} (the first third is warm-up). Job = Python driver + Spark JVM.",
            "",
            "| process | first third (MiB) | middle third (MiB) | last third (MiB) | max (MiB) | last vs middle "
            "| flat |",
            "|---|---:|---:|---:|---:|---:|---|",
            *rows,
            "",
            f"Memory flat (job and producer): **{'yes' if result['flat'] else 'no'}**. "
            f"Reconciliation with the truth after the soak: **{'passed' if result['reconciled'] else 'FAILED'}**.",
            "",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
