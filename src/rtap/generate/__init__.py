"""Seeded clickstream simulation and the ground truth a correct pipeline must reproduce.

``ClickstreamGenerator(settings.generator, partitions=..., watermark_delay_s=...)`` yields Kafka records for
each scheduled send time; ``generator.truth`` is their :class:`GroundTruth` (``to_json`` / ``from_json``,
``merge`` for a topic holding several runs). ``kafka_partition`` is Kafka's default partitioner.

What lives where, one idea a module:

- ``generator``: the loop that composes the parts below into records, and the public generator;
- ``catalog``: the shop (pages, products, search terms) and its visitors' devices, countries and addresses;
- ``visitors``: who is online: session slots of humans and bots, users' profiles, what a new session starts with;
- ``funnel``: what a session does next (the funnel's probabilities, per-session state, the encoded steps);
- ``draws``: every random decision of a send, one fixed row per send (why records do not depend on blocks);
- ``dirt``: malformed records, late events and re-sent copies, at the configured rates;
- ``ids``: reproducible version 4 UUIDs, formatted by numpy in bulk;
- ``fragments``: the pre-encoded JSON pieces a record is one ``bytes.join`` of;
- ``truth``: the pipeline's rules applied in production order (statuses, counts), the JSON document, merging;
- ``minutes``: the truth's one-minute aggregates (``page_views_1m``, ``events_1m``) with exact distinct counts;
- ``partition``: Kafka's murmur2 partitioner, so the truth knows each record's partition.
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
