"""Freshness and exactness of a running rtap from another client and another measurement.

    .venv/bin/python -m bench.outside_java --rates 1000,1000,10000,1000,10000 [--step-seconds 20] [--out F]

Against a running stack (e.g. ``rtap up --no-generator``; its settings from the environment, as ``rtap`` reads
them): each step runs Kafka's Java producer (``bench/java/OutsideProducer.java``: valid, distinct events with
upper-case ids, stamped by the JVM's clock) at one rate, waits, then reads through the warehouse's read-only path
how many of the step's events are stored, under how many ids, and their per-event freshness, with SQL of its own
(``rtap_bench.java_producer``): nothing of ``rtap_bench.traffic``, which ``rtap bench`` and ``bench/outside.py`` share.
A step is exact when every event sent is stored once. Exits non-zero when one is not.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid

from rtap_bench.java_producer import send, stored
from rtap_bench.results import report_steps, step_options

from rtap.settings import Settings
from rtap.warehouse import create_client


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    step_options(parser, rates="1000,1000,10000,1000,10000")
    args = parser.parse_args(argv)
    settings = Settings()
    steps = []
    for rate in (float(r) for r in args.rates.split(",")):
        run = uuid.uuid4().hex[:8]
        sent = send(settings, settings.kafka.topic, run, rate, args.step_seconds)
        time.sleep(args.settle_seconds)
        with create_client(settings, readonly=True) as client:
            found = stored(client, run)
        exact = found["events"] == found["ids"] == found["batched"] == sent["sent"] and sent["refused"] == 0
        steps.append({"rate": rate, **sent, **found, "exact": exact})
        print(json.dumps(steps[-1]), file=sys.stderr, flush=True)
    report_steps(steps, args.out)
    if not all(step["exact"] for step in steps):
        sys.exit("a step's events are not each stored once (see the steps above)")


if __name__ == "__main__":
    main()
