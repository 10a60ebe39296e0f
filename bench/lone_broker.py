"""`rtap produce` across clean restarts of a lone broker, asked for metadata while it shuts down.

    .venv/bin/python -m bench.lone_broker --restarts 12 [--debug broker,topic,metadata,eos] [--out FILE]

librdkafka 2.16.0 can drop every broker it knows when a lone broker answers a metadata request in the middle of
its clean shutdown (docs/operations.md, "One broker, stopped cleanly"): a client then never bootstraps again.
This brings it about as often as it can be brought about: a broker of its own (free ports, a temporary data
directory), ``produce_run`` open loop at ``--rate``, and a thread asking the run's producer for the topic's
metadata from the moment each stop begins until it ends. Per restart it prints how many metadata answers listed
no broker (librdkafka's debug log, with ``--debug``: its logging also widens the window, as it did in the CI run
that first met it) and the run's replacements of a producer that knew no broker; at the end, the run's report and
the records Kafka holds, which must be the run's, each once.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition, libversion

from rtap.ingest import producer as produce_module
from rtap.ingest.topics import ensure_topics
from rtap.runtime.broker import LocalKafka
from rtap.runtime.ports import free_ports
from rtap.settings import KafkaSettings, ProducerSettings, Settings


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _records_in(kafka: KafkaSettings) -> int:
    consumer = Consumer({**kafka.client_config(), "group.id": "rtap-lone-broker", "enable.auto.commit": False})
    consumer.assign([TopicPartition(kafka.topic, p, 0) for p in range(kafka.partitions)])
    records = idle = 0
    try:
        while idle < 3:
            messages = consumer.consume(10_000, 1.0)
            idle = 0 if messages else idle + 1
            records += len(messages)
    finally:
        consumer.close()
    return records


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, default=12)
    parser.add_argument("--rate", type=float, default=5_000.0)
    parser.add_argument("--debug", default="", help="librdkafka debug contexts of the run's producer")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    debug, replaced = _Lines(), _Lines()
    librdkafka = logging.getLogger("rtap.bench.librdkafka")
    librdkafka.setLevel(logging.DEBUG)
    librdkafka.propagate = False
    librdkafka.addHandler(debug)
    logging.getLogger("rtap.produce").addHandler(replaced)
    runs: list[Any] = []  # the run's producer holder, for the metadata requests
    product_config = produce_module.producer_config
    known_runs = produce_module._RunProducer._new

    def with_debug(kafka: KafkaSettings, producer: ProducerSettings) -> dict[str, Any]:
        extra = {"debug": args.debug, "logger": librdkafka} if args.debug else {}
        return {**product_config(kafka, producer), **extra}

    def remembered(run: Any) -> Any:
        if run not in runs:
            runs.append(run)
        return known_runs(run)

    produce_module.producer_config = with_debug  # type: ignore[assignment]
    produce_module._RunProducer._new = remembered  # type: ignore[method-assign,assignment]

    restarts = []
    port, controller = free_ports(2)
    with tempfile.TemporaryDirectory(prefix="rtap-lone-broker-") as tmp:
        kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}", controller_port=controller)
        with LocalKafka(Settings(data_dir=Path(tmp), kafka=kafka)) as broker:
            settings = broker.settings.model_copy(update={"kafka": broker.kafka_settings()})
            ensure_topics(settings.kafka)
            stop, asking = threading.Event(), threading.Event()
            reports: list[produce_module.ProduceReport] = []

            def produce() -> None:
                reports.append(
                    produce_module.produce_run(settings, rate=args.rate, duration_s=24 * 3600, seed=3, stop=stop)
                )

            def ask() -> None:
                while not stop.is_set():
                    if not asking.is_set() or not runs:
                        time.sleep(0.005)
                        continue
                    try:
                        runs[0].current.list_topics(settings.kafka.topic, timeout=1)
                    except Exception:  # noqa: BLE001 - the broker is going away: the asking matters, not the answer
                        time.sleep(0.01)

            run = threading.Thread(target=produce, daemon=True)
            run.start()
            threading.Thread(target=ask, daemon=True).start()
            time.sleep(4)
            for n in range(args.restarts):
                debug.lines.clear()
                replaced.lines.clear()
                asking.set()
                broker.stop()
                asking.clear()
                time.sleep(2)
                broker.start()
                time.sleep(8)
                restart = {
                    "restart": n,
                    "answers_listing_no_broker": sum(" 0 brokers" in line for line in debug.lines),
                    "replacements": list(replaced.lines),
                }
                restarts.append(restart)
                print(json.dumps(restart), flush=True)
            stop.set()
            run.join(300)
            (report,) = reports
            in_kafka = _records_in(settings.kafka)
    summary = {
        "command": "python -m bench.lone_broker " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "librdkafka": libversion()[0],
        "restarts": restarts,
        "produced": report.produced,
        "failed": report.failed,
        "first_error": report.first_error,
        "records_in_kafka": in_kafka,  # the run's own, each once: the same number as produced
    }
    print(json.dumps(summary, indent=2))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
