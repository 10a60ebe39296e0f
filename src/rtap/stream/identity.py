"""Is every input topic still the log the warehouse read? Checked before every query start, before retention.

rtap knows a Kafka record by its topic, partition and offset: the deduplication token of every insert, the
lookups that keep an earlier attempt's late events and dead letters from being stored twice, and the positions the
job resumes from (rtap.stream.gaps) all rest on it. A topic deleted and created again under its name, or the same
name on another cluster (``RTAP_KAFKA_BOOTSTRAP_SERVERS`` changed, the data directory kept), is another log whose
offsets start again at 0. Read into the same warehouse, its records would take the coordinates of records already
stored: the job would resume past its first records (silently, once it holds more than the old log did) or past
its end (then Spark fails every start with "Some data may have been lost"), and its late events and dead letters
would pass for ones already stored.

So the job does not start on such a log, and says in one line what changed and how to go on: read the new log
under another topic name, or into another warehouse. Either of two signs is enough:

- the topic's id differs from the id the last committed batch recorded for it (``pipeline_batches.topic_ids``,
  migration 0015). Kafka gives every topic a random id when it is created (KIP-516, Kafka 2.8);
- a partition's log ends before the position the warehouse read up to, or the partition is gone: what tells a new
  log on a broker without topic ids, or after batches written before migration 0015. A log cut back by an unclean
  leader election shows the same way, and is refused for the same reason: its offsets after the cut will be
  written again with other records.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rtap.errors import PipelineError
from rtap.kafka_admin import admin_client, partition_offsets, topic_ids
from rtap.settings import Settings
from rtap.warehouse import WarehouseClient

# The topic ids of the last committed batch that recorded any: every batch records those of all its input topics.
RECORDED_TOPIC_IDS = """
SELECT topic_ids FROM {db}.pipeline_batches FINAL WHERE notEmpty(topic_ids) ORDER BY finished_at DESC LIMIT 1
"""


@dataclass(frozen=True)
class OtherLog:
    """A topic whose log is not the one the warehouse read: why it is known (the ids, the partitions)."""

    topic: str
    recorded_id: str  # '' when no batch recorded one
    current_id: str  # '' when the broker has no topic ids
    # Per partition the warehouse read: (its position, the log end now, None when the partition is gone), only
    # those whose log ends before the position.
    behind: Mapping[int, tuple[int, int | None]]

    def describe(self) -> str:
        signs = []
        if self.recorded_id and self.current_id and self.recorded_id != self.current_id:
            signs.append(f"Kafka gives it id {self.current_id}, the warehouse read the log of id {self.recorded_id}")
        if self.behind:  # one partition says it; all of them would only make the line long
            partition = min(self.behind)
            position, end = self.behind[partition]
            now = "is gone" if end is None else f"ends at offset {end}"
            more = f", and {len(self.behind) - 1} more partitions likewise" if len(self.behind) > 1 else ""
            signs.append(f"its partition {partition} {now}, the warehouse read it up to offset {position}{more}")
        return f"topic {self.topic} is not the log this warehouse read ({'; '.join(signs)})"


def other_logs(
    recorded: Mapping[str, str],
    current: Mapping[str, str],
    positions: Mapping[str, Mapping[int, int]],
    log_ends: Mapping[str, Mapping[int, int]],
) -> list[OtherLog]:
    """The topics of ``current`` (each input topic's id now) that are another log than the one the warehouse read.

    ``recorded``: the ids the last batch recorded; ``positions``: per topic and partition, where the warehouse
    resumes (the offset after the last record it accounts for); ``log_ends``: per topic and partition, the log end
    offset now.
    """
    found = []
    for topic, now in sorted(current.items()):
        before = recorded.get(topic, "")
        ends = log_ends.get(topic, {})
        behind = {
            partition: (position, ends.get(partition))
            for partition, position in positions.get(topic, {}).items()
            if partition not in ends or ends[partition] < position
        }
        if behind or (before and now and before != now):
            found.append(OtherLog(topic, before, now, behind))
    return found


def refusal(found: list[OtherLog]) -> str:
    """The one line the job stops with."""
    return (
        f"{'; '.join(log.describe() for log in found)}: it was deleted and created again, its log was cut back, or "
        "RTAP_KAFKA_BOOTSTRAP_SERVERS names another cluster. Its offsets start again where the warehouse already "
        "holds records, and rtap knows a record by its topic, partition and offset, so it does not read that log into "
        "this warehouse: read it under another topic name (RTAP_KAFKA_TOPIC, RTAP_KAFKA_BROWSER_TOPIC or "
        "RTAP_KAFKA_SOURCE_TOPICS), or into another warehouse (another RTAP_DATA_DIR, or RTAP_CLICKHOUSE_DATABASE on "
        "a server); docs/operations.md, 'A topic created again'"
    )


def check_topic_identity(
    settings: Settings, client: WarehouseClient, positions: Mapping[str, Mapping[int, int]]
) -> dict[str, str]:
    """Each input topic's id now, for the batches to record; raises PipelineError (:func:`refusal`) when a topic
    is another log than the one the warehouse read. ``positions``: each input topic's
    :func:`rtap.stream.gaps.resume_positions`."""
    kafka = settings.kafka
    admin = admin_client(kafka)
    current = topic_ids(admin, kafka.input_topics)
    rows = client.query_rows(RECORDED_TOPIC_IDS)
    recorded = dict(rows[0][0]) if rows else {}  # a Map arrives as (key, value) pairs from Arrow
    ends = partition_offsets(admin, [topic for topic, read in positions.items() if read], "latest")
    log_ends: dict[str, dict[int, int]] = {}
    for (topic, partition), offset in ends.items():
        log_ends.setdefault(topic, {})[partition] = offset
    found = other_logs(recorded, current, positions, log_ends)
    if found:
        raise PipelineError(refusal(found))
    return current
