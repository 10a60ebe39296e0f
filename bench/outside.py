"""Freshness of a running rtap, measured from outside: a plain producer, the warehouse's own commit times.

    .venv/bin/python -m bench.outside --bootstrap 127.0.0.1:9092 --rates 1000,10000,50000 [--step-seconds 20]

The sender and the measurement are ``rtap_bench.traffic`` (its docstring says exactly what is sent and
measured): the same code ``rtap bench`` runs in its live phase, so the two agree by construction. This script
is the sending process itself, next to whatever stack is running: a confluent-kafka producer offering
realistic traffic open loop at each rate (events stamped with their intended send time; ~1% duplicates,
~0.5% truncated JSON, ~0.3% events two minutes late), then per-event freshness = ``pipeline_batches.finished_at``
of the event's batch minus its ``event_time``, read through ``rtap sql``'s read-only path while the stack runs.
Results: JSON on stdout and, with ``--out``, a file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from dataclasses import asdict

from rtap_bench.results import report_steps, step_options
from rtap_bench.traffic import freshness, offer

from rtap.settings import Settings
from rtap.warehouse import create_client


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default=None, help="default: RTAP_KAFKA_BOOTSTRAP_SERVERS")
    step_options(parser, rates="1000,10000")
    args = parser.parse_args(argv)
    settings = Settings()
    bootstrap = args.bootstrap or settings.kafka.bootstrap_servers
    steps = []
    for n, rate in enumerate(float(r) for r in args.rates.split(",")):
        run = f"out{uuid.uuid4().hex[:6]}"
        sent = offer(
            bootstrap, settings.kafka.topic, rate, args.step_seconds, run, seed=n,
            watermark_delay_s=settings.stream.watermark_delay_s,
        )  # fmt: skip
        time.sleep(args.settle_seconds)
        with create_client(settings, readonly=True) as client:
            fresh = freshness(client, run, sent)
        steps.append({**asdict(sent), "achieved_rate": round(sent.achieved_rate), "freshness": fresh})
        print(json.dumps(steps[-1]), file=sys.stderr, flush=True)
    report_steps(steps, args.out)


if __name__ == "__main__":
    main()
