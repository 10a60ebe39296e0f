"""Pure DataFrame -> DataFrame transforms of the stream job. No I/O, no session state, no clock.

Each micro-batch of Kafka records goes through :func:`classify_batch`, which gives every record exactly one
status; the sink then writes each status to its table. The semantics, chosen so that a replayed micro-batch
(after a crash) or a different batching (after a restart) classifies every record identically:

- ``dead_letter``: the record breaks the contract (``error`` says why; ``raw`` keeps the payload).
- ``late``: valid, but its event_time is behind the watermark *of its Kafka partition at that record*:
  the highest event_time among the valid records before it in the same partition (including earlier
  micro-batches, passed in as ``high_water``), minus the watermark delay. Tracking the watermark per partition
  and per record, in Kafka order, makes it independent of micro-batch boundaries; Spark's built-in watermark
  moves once per batch, so the same event could be on time in one run and late in a replay.
- ``duplicate``: valid and on time, but an earlier on-time record in this batch carried the same event_id.
  (Copies in earlier batches are found by the sink in the warehouse, which is the dedup state that survives
  restarts.)
- ``accepted``: everything else; goes to ``events`` and the aggregates.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from rtap.contract import contract_fields
from rtap.contract.spark import validate_records

DEAD_LETTER = "dead_letter"
LATE = "late"
DUPLICATE = "duplicate"
ACCEPTED = "accepted"
STATUSES = (DEAD_LETTER, LATE, DUPLICATE, ACCEPTED)

LINEAGE_COLUMNS = ("topic", "kafka_partition", "kafka_offset", "kafka_timestamp")
EVENT_COLUMNS = tuple(f.name for f in contract_fields())


def parse_records(records: DataFrame, *, max_record_bytes: int, max_future_skew_s: float) -> DataFrame:
    """Kafka records (Spark's Kafka source schema) -> typed contract columns, lineage, ``error`` and ``raw``.

    ``raw`` and ``raw_key`` (the record's bytes) are kept only for invalid records: valid ones are fully
    represented by their columns, and carrying every payload to the driver would double the batch's memory.
    """
    validated = validate_records(
        records,
        value="value",
        record_timestamp="timestamp",
        max_record_bytes=max_record_bytes,
        max_future_skew_s=max_future_skew_s,
    )
    invalid = F.col("error").isNotNull()
    return validated.select(
        F.col("topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        *(F.col(name) for name in EVENT_COLUMNS if name != "schema_version"),
        F.coalesce(F.col("schema_version"), F.lit(1)).alias("schema_version"),
        F.col("error"),
        F.when(invalid, F.col("value")).alias("raw"),
        F.when(invalid, F.col("key")).alias("raw_key"),
    )


def _high_water_lookup(high_water: Mapping[int, datetime]) -> Column:
    if not high_water:
        return F.lit(None).cast("timestamp")
    pairs: list[Column] = []
    for partition, moment in sorted(high_water.items()):
        pairs += [F.lit(partition), F.lit(moment).cast("timestamp")]
    return F.element_at(F.create_map(*pairs), F.col("kafka_partition"))


def classify_lateness(parsed: DataFrame, *, high_water: Mapping[int, datetime], watermark_delay_s: float) -> DataFrame:
    """Add ``watermark`` (per record, see module doc) and ``status`` = dead_letter | late | NULL (not decided)."""
    valid = F.col("error").isNull()
    earlier = Window.partitionBy("kafka_partition").orderBy("kafka_offset").rowsBetween(Window.unboundedPreceding, -1)
    before = F.max(F.when(valid, F.col("event_time"))).over(earlier)
    high = F.greatest(before, _high_water_lookup(high_water))
    watermark = high - F.expr(f"INTERVAL {int(watermark_delay_s * 1000)} MILLISECONDS")
    return parsed.withColumn("watermark", watermark).withColumn(
        "status",
        F.when(~valid, F.lit(DEAD_LETTER)).when(F.col("event_time") < F.col("watermark"), F.lit(LATE)),
    )


def mark_batch_duplicates(classified: DataFrame) -> DataFrame:
    """Decide the undecided rows: the first copy of an event_id (in Kafka order) is accepted, later ones are not."""
    undecided = F.col("status").isNull()
    copies = Window.partitionBy(undecided, F.col("event_id")).orderBy("kafka_partition", "kafka_offset")
    rank = F.row_number().over(copies)
    return classified.withColumn(
        "status",
        F.when(~undecided, F.col("status")).when(rank > 1, F.lit(DUPLICATE)).otherwise(F.lit(ACCEPTED)),
    )


def classify_batch(
    records: DataFrame,
    *,
    high_water: Mapping[int, datetime],
    watermark_delay_s: float,
    max_record_bytes: int,
    max_future_skew_s: float,
) -> DataFrame:
    """The whole per-batch decision: every Kafka record gets exactly one of :data:`STATUSES`."""
    parsed = parse_records(records, max_record_bytes=max_record_bytes, max_future_skew_s=max_future_skew_s)
    return mark_batch_duplicates(classify_lateness(parsed, high_water=high_water, watermark_delay_s=watermark_delay_s))
