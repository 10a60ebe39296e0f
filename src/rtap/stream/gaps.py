"""Records Kafka deleted before the stream job read them: found before every query start, never skipped silently.

Kafka's retention deletes old log segments whether or not a consumer has read them. When the job resumes
(after a stop, a crash, or a failed batch, including Spark's own data-loss failure) it compares where it
will resume in each partition with the partition's log start offset (the earliest offset still stored):

    resume position  = the end offset of the last batch committed in the warehouse (``pipeline_batches``),
                       or the end of a gap already recorded in ``data_gaps``, whichever is later;
    gap              = [resume position, log start offset) when the log start is past the position.

A gap stops the job with one line naming each partition, its offsets and the number of records, and how
to continue. With ``RTAP_STREAM_ACCEPT_DATA_LOSS=true`` (``rtap stream --accept-data-loss``) the job
records the gaps in ``{db}.data_gaps``, logs them, sets Spark's checkpoint aside (its offsets point into
the deleted range, where Spark would stop again) and resumes at the log start: the new checkpoint starts
from the warehouse's positions, exactly as after a deleted checkpoint. ``rtap reconcile`` reports the
recorded gaps as records lost by retention.

The warehouse, not the checkpoint, is the reference: a batch Spark committed whose writes did not commit is
taken out of the checkpoint before any start (rtap.stream.overlap), so the warehouse's positions are never behind
the checkpoint's, and records the warehouse holds were processed even if the checkpoint would read them again.
A pipeline that never committed a batch has nothing to lose yet: it starts at the earliest offset still stored
(``starting_offsets``), as a new consumer does.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from rtap import metrics
from rtap.errors import PipelineError
from rtap.kafka_admin import admin_client, partition_offsets
from rtap.settings import KafkaSettings, Settings
from rtap.warehouse import WarehouseClient

log = logging.getLogger("rtap.stream")

REASON_RETENTION = "retention"

# Per partition of one topic, the offset after the last record the warehouse accounts for: processed in a
# committed batch, or skipped in a recorded gap. Batches committed before migration 0009 recorded the
# contract-v1 topic's partitions only, in end_offsets.
RESUME_POSITIONS = """
SELECT p, max(o) FROM (
    SELECT p, o FROM (
        SELECT if(empty(topic_end_offsets), mapFilter((k, v) -> {topic:String} = {v1_topic:String}, end_offsets),
                  topic_end_offsets[{topic:String}]) AS positions
        FROM {db}.pipeline_batches FINAL
    )
    ARRAY JOIN mapKeys(positions) AS p, mapValues(positions) AS o
    UNION ALL
    SELECT `partition` AS p, end_offset AS o FROM {db}.data_gaps FINAL WHERE topic = {topic:String}
)
GROUP BY p ORDER BY p
"""

INSERT_GAPS = """
INSERT INTO {db}.data_gaps (detected_at, topic, `partition`, first_offset, end_offset, records, reason, pipeline_id)
SELECT detected_at, topic, `partition`, first_offset, end_offset, records, reason, pipeline_id FROM $rows
"""


@dataclass(frozen=True, order=True)
class Gap:
    """Offsets ``[first_offset, end_offset)`` of one partition of ``topic``, deleted before the job read them."""

    partition: int
    first_offset: int
    end_offset: int
    topic: str = ""

    @property
    def records(self) -> int:
        """The offsets deleted: on a topic a transactional producer writes, an upper bound of the records lost, as
        its transaction markers and aborted records take offsets too (what was deleted cannot be read to tell)."""
        return self.end_offset - self.first_offset


def find_gaps(
    positions: Mapping[int, int], log_start: Mapping[int, int], *, from_earliest: bool = True, topic: str = ""
) -> list[Gap]:
    """Partitions whose log now starts after the position the job resumes from.

    A partition without a position was never read by this pipeline; once the pipeline has committed
    anything at all, it owed that partition every record from offset 0 when it starts from the earliest
    offsets (``from_earliest``), and nothing when it starts from the latest. A pipeline that has committed
    nothing is not checked: it starts wherever ``starting_offsets`` says, as a new consumer does.
    """
    if not positions:
        return []
    return [
        Gap(partition, positions.get(partition, 0), start, topic)
        for partition, start in sorted(log_start.items())
        if (partition in positions or from_earliest) and start > positions.get(partition, 0)
    ]


def spark_starting_offsets(
    topics: Mapping[str, tuple[Mapping[int, int], Iterable[int]]], *, from_earliest: bool = True
) -> str:
    """Spark's ``startingOffsets`` JSON from each topic's (positions, partitions): Spark requires every
    partition, and a partition this pipeline never read starts at the earliest (-2) or latest (-1) offset,
    like the setting says."""
    default = -2 if from_earliest else -1
    return json.dumps(
        {
            topic: {str(p): positions.get(p, default) for p in sorted(partitions)}
            for topic, (positions, partitions) in topics.items()
        }
    )


def describe(gaps: Iterable[Gap]) -> str:
    """``clickstream.events partition 0 offsets 100..199 (100 records), ...``: the ranges in one line."""
    return ", ".join(
        f"{g.topic} partition {g.partition} offsets {g.first_offset}..{g.end_offset - 1} ({g.records} records)".lstrip()
        for g in gaps
    )


def log_start_offsets(kafka: KafkaSettings, name: str) -> dict[int, int]:
    """The earliest offset still stored in every partition of topic ``name`` (after retention)."""
    starts = partition_offsets(admin_client(kafka), [name], "earliest")
    return {partition: offset for (_, partition), offset in starts.items()}


def resume_positions(client: WarehouseClient, kafka: KafkaSettings, topic: str) -> dict[int, int]:
    """Per partition of ``topic``, the offset after the last record the warehouse accounts for (see the module
    docstring)."""
    parameters = {"topic": topic, "v1_topic": kafka.topic}
    return {int(p): int(o) for p, o in client.query_rows(RESUME_POSITIONS, parameters=parameters)}


def record_gaps(client: WarehouseClient, topic: str, gaps: list[Gap], pipeline_id: str) -> None:
    """Write the gaps to ``{db}.data_gaps`` (idempotent: the same gap collapses under FINAL)."""
    now = datetime.now(UTC)
    rows = pa.table(
        {
            "detected_at": pa.array([now] * len(gaps), pa.timestamp("ms", tz="UTC")),
            "topic": [topic] * len(gaps),
            "partition": pa.array([g.partition for g in gaps], pa.int32()),
            "first_offset": pa.array([g.first_offset for g in gaps], pa.int64()),
            "end_offset": pa.array([g.end_offset for g in gaps], pa.int64()),
            "records": pa.array([g.records for g in gaps], pa.uint64()),
            "reason": [REASON_RETENTION] * len(gaps),
            "pipeline_id": [pipeline_id] * len(gaps),
        }
    )
    client.command(INSERT_GAPS, inputs={"rows": rows})


def set_checkpoint_aside(checkpoint: Path) -> Path | None:
    """Rename Spark's checkpoint (kept for inspection): its offsets point into deleted data."""
    if not checkpoint.exists():
        return None
    aside = checkpoint.with_name(f"{checkpoint.name}.data-loss-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}")
    shutil.move(checkpoint, aside)
    return aside


def check_retention(
    settings: Settings,
    client: WarehouseClient,
    checkpoint: Path,
    pipeline_id: str,
    positions: Mapping[str, Mapping[int, int]],
) -> list[Gap]:
    """Before a query starts: stop on unread deleted records, or record and skip them when accepted.
    ``positions``: each input topic's :func:`resume_positions`.

    Raises :class:`PipelineError` (one line: partitions, offsets, counts, how to continue) unless
    ``settings.stream.accept_data_loss``; then returns the gaps it recorded (empty when there are none).
    """
    from_earliest = settings.stream.starting_offsets == "earliest"
    gaps = [
        gap
        for topic in settings.kafka.input_topics
        for gap in find_gaps(
            positions[topic],
            log_start_offsets(settings.kafka, topic),
            from_earliest=from_earliest,
            topic=topic,
        )
    ]
    if not gaps:
        return []
    total = sum(g.records for g in gaps)
    topics = ", ".join(sorted({g.topic for g in gaps}))
    if not settings.stream.accept_data_loss:
        raise PipelineError(
            f"Kafka deleted {total} records of {topics} that the job had not read (retention): {describe(gaps)}; "
            "nothing was written for them. To skip them and continue, run `rtap stream --accept-data-loss` "
            f"(RTAP_STREAM_ACCEPT_DATA_LOSS=true): the ranges are recorded in {client.database}.data_gaps "
            "and reported by `rtap reconcile`"
        )
    for topic in sorted({g.topic for g in gaps}):
        record_gaps(client, topic, [g for g in gaps if g.topic == topic], pipeline_id)
    metrics.STREAM.data_gaps_recorded(total)
    aside = set_checkpoint_aside(checkpoint)
    log.warning(
        "skipping %d records of %s deleted by retention before they were read (accepted): %s; recorded in "
        "%s.data_gaps; checkpoint set aside to %s",
        total, topics, describe(gaps), client.database, aside,
    )  # fmt: skip
    return gaps
