"""Where the collector's accepted events go: the abstract :class:`Sink` and Kafka's."""

from rtap.collect.sinks.base import Health, Record, Sink
from rtap.collect.sinks.kafka import KafkaSink

__all__ = ["Health", "KafkaSink", "Record", "Sink"]
