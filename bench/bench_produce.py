"""Producer throughput against a real local broker: the rtap path (P1) against raw confluent-kafka (B1).

    .venv/bin/python -m bench.bench_produce [--records 300000] [--repeats 3]

Starts a private LocalKafka (free loopback ports, temporary data dir), then, in one run and alternating:

* B1 = raw produce: pre-encoded generator records (made before the clock starts) handed to a
  confluent-kafka Producer with rtap's producer settings, flushed. The ceiling for this broker and config.
* P1 = ``rtap produce --rate 0 --count N``'s code path (``produce_run``): generation, encoding, produce,
  flush, ground truth written.
* G1 = the generator alone, no Kafka: the ceiling P1 can reach, to tell the two costs apart.

Each is repeated; the medians, the spread (min..max) and the ratio P1/B1 go to bench/results/produce.json
and produce.md. Records/s counts records acknowledged by the broker (acks=all, idempotent, lz4).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from rtap_bench.procfs import tree_cpu_s
from rtap_bench.produce import (
    Sample,
    generate_only,
    pre_encoded,
    private_broker,
    raw_produce,
    rtap_produce,
    summary,
)

from rtap.ingest.topics import ensure_topics

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=300_000, help="records per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS, help="where produce.json and produce.md go")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]

    with private_broker("bench.produce", REPO_ROOT / "jars" / "lib") as (_broker, settings):
        ensure_topics(settings.kafka)
        payload = pre_encoded(settings, args.records)
        raw_produce(settings, payload[: args.records // 10])  # warm-up: connections, JIT on the broker side
        raw: list[Sample] = []
        rtap: list[Sample] = []
        gen: list[Sample] = []
        cpu: dict[str, list[_Cpu]] = {"B1": [], "P1": [], "G1": []}
        for _ in range(args.repeats):
            raw.append(_with_cpu(cpu["B1"], lambda: raw_produce(settings, payload)))
            rtap.append(_with_cpu(cpu["P1"], lambda: rtap_produce(settings, args.records)[0]))
            gen.append(_with_cpu(cpu["G1"], lambda: generate_only(settings, args.records)))
            print(f"B1 {raw[-1].per_s:,.0f}/s   P1 {rtap[-1].per_s:,.0f}/s   G1 {gen[-1].per_s:,.0f}/s", flush=True)

    load_after = os.getloadavg()[0]
    b1, p1, g1 = (
        {**summary(samples), **_cpu_summary(cpu[name], samples)}
        for name, samples in (("B1", raw), ("P1", rtap), ("G1", gen))
    )
    ratio = p1["median_records_per_s"] / b1["median_records_per_s"]
    command = "python -m bench.bench_produce " + shlex.join(argv if argv is not None else sys.argv[1:])
    result = {
        "command": command.strip(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": _cpus(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            # The broker shares these cores; other work on the machine moves both numbers.
            "load_average_1m_before": load_before,
            "load_average_1m_after": load_after,
        },
        "records_per_measurement": args.records,
        "repeats": args.repeats,
        "producer": settings.producer.model_dump(),
        "partitions": settings.kafka.partitions,
        "B1_raw_produce": b1,
        "P1_rtap_produce": p1,
        "G1_generate_only": g1,
        "ratio_P1_over_B1": ratio,
        "ratio_P1_over_G1": p1["median_records_per_s"] / g1["median_records_per_s"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "produce.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    (args.out / "produce.md").write_text(_markdown(result))
    print(_markdown(result))


@dataclass(frozen=True)
class _Cpu:
    """CPU seconds of one measurement: the calling (Python) thread, this whole process, the broker."""

    thread_s: float
    process_s: float
    broker_s: float


def _with_cpu(into: list[_Cpu], measure: Callable[[], Sample]) -> Sample:
    """Run ``measure`` and note its CPU: "one core" means the Python thread; librdkafka's threads are extra."""
    thread, process, tree = time.thread_time(), time.process_time(), tree_cpu_s(os.getpid())
    sample = measure()
    thread, process = time.thread_time() - thread, time.process_time() - process
    # The broker is this process's child: the tree's CPU minus our own is the broker's.
    into.append(_Cpu(thread, process, tree_cpu_s(os.getpid()) - tree - process))
    return sample


def _cpu_summary(cpu: list[_Cpu], samples: list[Sample]) -> dict[str, float]:
    def per_record(seconds: list[float]) -> float:
        return float(statistics.median(s * 1e6 / sample.records for s, sample in zip(seconds, samples, strict=True)))

    return {
        "median_python_thread_cpu_us_per_record": per_record([c.thread_s for c in cpu]),
        "median_process_cpu_us_per_record": per_record([c.process_s for c in cpu]),
        "median_broker_cpu_us_per_record": per_record([c.broker_s for c in cpu]),
    }


def _cpus() -> int:
    return os.cpu_count() or 0


def _markdown(result: dict[str, Any]) -> str:
    machine = result["machine"]
    rows = []
    for name, key in (
        ("B1 raw confluent-kafka produce (pre-encoded)", "B1_raw_produce"),
        ("P1 rtap produce (generate + encode + produce)", "P1_rtap_produce"),
        ("G1 generator alone (no Kafka)", "G1_generate_only"),
    ):
        s = result[key]
        rows.append(
            f"| {name} | {s['median_records_per_s']:,.0f} | {s['min_records_per_s']:,.0f} .. "
            f"{s['max_records_per_s']:,.0f} | {s['median_python_thread_cpu_us_per_record']:.2f} | "
            f"{s['median_process_cpu_us_per_record']:.2f} | {s['median_broker_cpu_us_per_record']:.2f} |"
        )
    return "\n".join(
        [
            "# Producer throughput",
            "",
            f"Command: `{result['command']}` ({result['when']}, {machine['cpus']} CPUs, Python {machine['python']}, "
            f"1-min load average {machine['load_average_1m_before']:.1f} before, "
            f"{machine['load_average_1m_after']:.1f} after)",
            "",
            f"{result['records_per_measurement']:,} records per measurement, {result['repeats']} repeats, "
            f"{result['partitions']} partitions, acks=all, idempotent, {result['producer']['compression']}, "
            f"linger {result['producer']['linger_ms']} ms. Broker: local single-node KRaft on the same machine.",
            "",
            "| measurement | median records/s | spread (min .. max) | Python thread CPU µs/record "
            "| producer process CPU µs/record | broker CPU µs/record |",
            "|---|---:|---:|---:|---:|---:|",
            *rows,
            "",
            "CPU columns are medians per acknowledged record. The Python thread is the single core the producer "
            "loop runs on (generation, encoding, produce() calls); the process adds librdkafka's own threads "
            "(batching, lz4, network); the broker shares the same machine's cores.",
            "",
            f"Ratio P1/B1 (medians): **{result['ratio_P1_over_B1']:.2f}**; "
            f"P1/G1: {result['ratio_P1_over_G1']:.2f} (how much of the generator's own speed survives producing).",
            "",
        ]
    )


if __name__ == "__main__":
    main()
