"""Produce-side measurements: raw confluent-kafka (B1), ``rtap produce``'s path (P1), the generator alone (G1).

Shared by ``rtap bench`` and ``bench/bench_produce.py``. Every rate counts records the broker acknowledged
(acks=all, idempotent, rtap's producer settings).
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtap.errors import BrokerError
from rtap.runtime.broker import LocalKafka
from rtap.runtime.ports import free_ports
from rtap.settings import KafkaSettings, Settings


@contextlib.contextmanager
def private_broker(prefix: str, jars_dir: Path) -> Iterator[tuple[LocalKafka, Settings]]:
    """A broker of this run only (free loopback ports, a temporary data dir) and settings with unique topics.

    Stand-alone benchmark scripts use it so their numbers never mix with a running stack's traffic.
    """
    with tempfile.TemporaryDirectory(prefix=f"rtap-{prefix}-") as tmp:
        port, controller_port = free_ports(2)
        kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}", port=port, controller_port=controller_port)
        base = Settings(data_dir=Path(tmp), jars_dir=jars_dir, kafka=kafka)
        with LocalKafka(base) as broker:
            suffix = uuid.uuid4().hex[:8]
            topics = broker.kafka_settings().model_copy(
                update={"topic": f"{prefix}.{suffix}.events", "dlq_topic": f"{prefix}.{suffix}.dlq"}
            )
            yield broker, base.model_copy(update={"kafka": topics})


@dataclass(frozen=True)
class Sample:
    """One timed measurement: ``records`` handled in ``seconds``, and the local stack's CPU time spent."""

    records: int
    seconds: float
    cpu_s: float | None = None

    @property
    def per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us_per_record(self) -> float | None:
        return None if self.cpu_s is None or not self.records else self.cpu_s * 1e6 / self.records


def summary(samples: list[Sample]) -> dict[str, Any]:
    """Median and spread over repeats: the machine is shared and noisy, one number would mislead."""
    rates = [s.per_s for s in samples]
    cpu = [c for s in samples if (c := s.cpu_us_per_record) is not None]
    return {
        "median_records_per_s": statistics.median(rates),
        "min_records_per_s": min(rates),
        "max_records_per_s": max(rates),
        "median_cpu_us_per_record": statistics.median(cpu) if cpu else None,
        "samples": [
            {
                "records": s.records,
                "seconds": round(s.seconds, 4),
                "cpu_s": None if s.cpu_s is None else round(s.cpu_s, 3),
            }
            for s in samples
        ],
    }


def median_rate(result: dict[str, Any], key: str) -> float | None:
    """The median records/s of one measurement of a result document (see :func:`summary`); None if it failed."""
    value = result.get(key, {}).get("median_records_per_s")
    return float(value) if value else None


def pre_encoded(settings: Settings, records: int) -> list[tuple[bytes, bytes]]:
    """Generator output, made before any clock starts, one block of sends per millisecond."""
    from rtap.generate import ClickstreamGenerator
    from rtap.ingest.producer import BLOCK_EVENTS

    generator = ClickstreamGenerator(
        settings.generator, partitions=settings.kafka.partitions, watermark_delay_s=settings.stream.watermark_delay_s
    )
    start_ms = time.time_ns() // 1_000_000
    out: list[tuple[bytes, bytes]] = []
    while len(out) < records:
        block = generator.generate_block([start_ms + len(out) // BLOCK_EVENTS] * BLOCK_EVENTS)
        out.extend(zip(block.keys, block.values, strict=True))
    return out[:records]


def raw_produce(settings: Settings, payload: list[tuple[bytes, bytes]]) -> Sample:
    """B1: produce already-encoded records as fast as confluent-kafka takes them, then flush."""
    from confluent_kafka import Producer

    from rtap.ingest.producer import DELIVERY_TIMEOUT_MS, producer_config

    config: dict[str, Any] = producer_config(settings.kafka, settings.producer)
    failures: list[object] = []
    producer = Producer({**config, "on_delivery": lambda error, _msg: failures.append(error) if error else None})
    produce, poll, topic = producer.produce, producer.poll, settings.kafka.topic
    started = time.perf_counter()
    for n, (key, value) in enumerate(payload):
        while True:
            try:
                produce(topic, value, key)
                break
            except BufferError:
                poll(0.05)
        if n % 512 == 0:
            poll(0)
    remaining = producer.flush(DELIVERY_TIMEOUT_MS / 1000)
    elapsed = time.perf_counter() - started
    if remaining or failures:
        raise BrokerError(f"B1: {remaining} undelivered, {len(failures)} failed: {failures[:1]}")
    return Sample(len(payload), elapsed)


def generate_only(settings: Settings, records: int) -> Sample:
    """G1: the generator alone, in blocks as ``produce_run`` uses it: the ceiling P1 can reach.

    Records are made, classified into the truth, then dropped.
    """
    from rtap.generate import ClickstreamGenerator
    from rtap.ingest.producer import BLOCK_EVENTS

    generator = ClickstreamGenerator(
        settings.generator, partitions=settings.kafka.partitions, watermark_delay_s=settings.stream.watermark_delay_s
    )
    generate_block, time_ns = generator.generate_block, time.time_ns
    made = 0
    started = time.perf_counter()
    while made < records:
        made += len(generate_block([time_ns() // 1_000_000] * BLOCK_EVENTS).values)
    return Sample(made, time.perf_counter() - started)


def rtap_produce(settings: Settings, records: int) -> tuple[Sample, Any]:
    """P1: the whole ``rtap produce --rate 0`` path; counts what the broker acknowledged. Also returns the report."""
    from rtap.ingest.producer import produce_run

    started = time.perf_counter()
    report = produce_run(settings, rate=0, count=records)
    elapsed = time.perf_counter() - started
    if report.failed:
        raise BrokerError(f"P1: {report.failed} records failed: {report.first_error}")
    return Sample(report.delivered, elapsed), report
