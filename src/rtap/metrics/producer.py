"""``rtap produce``'s metrics: records handed to Kafka and records Kafka did not acknowledge.

Counted at the producer's own housekeeping points (once per block of sends, once per failed delivery), from
the same tallies its run report prints, so ``sent - failed`` is what the broker acknowledged.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import Counter
from prometheus_client.core import Metric
from prometheus_client.registry import Collector


class ProducerMetrics(Collector):
    """Counters of ``rtap produce`` (and of ``rtap up``'s generator, which runs the same code)."""

    def __init__(self) -> None:
        self.sent = Counter(
            "rtap_producer_records_sent",
            "Records handed to the Kafka client (the run report's produced).",
            registry=None,
        )
        self.delivery_failures = Counter(
            "rtap_producer_delivery_failures",
            "Records Kafka did not acknowledge: delivery errors and records still queued after the final flush.",
            registry=None,
        )
        self.clients_replaced = Counter(
            "rtap_producer_clients_replaced",
            "Kafka producers replaced for knowing no broker any more (librdkafka 2.16: rtap.kafka_clients).",
            registry=None,
        )
        self.resent_unchecked = Counter(
            "rtap_producer_records_resent_unchecked",
            "Records a replaced producer's successor sent again without knowing whether Kafka held them already "
            "(another producer wrote to their partition, or Kafka did not answer): any it held is stored twice.",
            registry=None,
        )

    def collect(self) -> Iterator[Metric]:
        yield from self.sent.collect()
        yield from self.delivery_failures.collect()
        yield from self.clients_replaced.collect()
        yield from self.resent_unchecked.collect()
