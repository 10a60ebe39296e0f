"""Seeded clickstream simulation and the ground truth a correct pipeline must reproduce.

``ClickstreamGenerator(settings.generator, partitions=..., watermark_delay_s=...)`` yields Kafka records for
each scheduled send time; ``generator.truth`` is their :class:`GroundTruth` (``to_json`` / ``from_json``,
``merge`` for a topic holding several runs). ``kafka_partition`` is Kafka's default partitioner.
"""

from rtap.generate.generator import ClickstreamGenerator, GeneratedRecord
from rtap.generate.partition import kafka_partition, murmur2
from rtap.generate.truth import EventStats, GroundTruth, PageViews, Totals

__all__ = [
    "ClickstreamGenerator",
    "EventStats",
    "GeneratedRecord",
    "GroundTruth",
    "PageViews",
    "Totals",
    "kafka_partition",
    "murmur2",
]
