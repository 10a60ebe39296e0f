"""``rtap dlq replay``: give dead letters a second chance after the contract (or the producer) was fixed.

Reads the warehouse's ``dead_letters`` (the exactly-once record of every rejection, with the topic each came
from; the DLQ topic is at-least-once), page by page, through the read-only client, so it works next to a
running ``rtap up``. Each dead letter is checked against the source format of ITS topic
(``RTAP_KAFKA_SOURCE_TOPICS``; contract v1 for ``RTAP_KAFKA_TOPIC``) and re-published, bytes as stored, to that
same topic, keyed by the event's session as contract v1 prescribes (the table keeps no key). The job then reads
it like any other record. Never re-published:

- a dead letter whose topic is no input topic any more (reported per topic);
- a truncated one: the table keeps at most the record size limit of a payload, and its size in ``raw_size``
  (migration 0010; a warehouse migrated before has no such column, and then nothing stored is cut);
- one larger than the record size limit (``RTAP_STREAM_MAX_RECORD_BYTES``): the job would refuse it again;
- one that still fails its format (counted by reason class): checked by the reference validator, for the event
  it names, and by the job's own reader with the record stamped now, for its reason (the event time's bounds
  are the job's, so a dead letter the job would refuse again is reported, never re-sent to fail again);
- one whose event is stored already (in ``events`` or ``late_events``, same id, an event time in the same minute
  or one on either side: the job's copy rule): a replay run before, or another copy that passed. The job would
  only count it as a duplicate.

Memory is bounded by the page size times the record size limit, whatever the table holds.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from confluent_kafka import KafkaError, KafkaException, Producer

from rtap.contract.formats import SourceReader, reader, validate_source
from rtap.contract.model import unframed
from rtap.errors import BrokerError, ContractError
from rtap.kafka_clients import produce_waiting
from rtap.ops.dead_letters import Filters, reason_class
from rtap.settings import Settings
from rtap.warehouse import WarehouseClient

PAGE_ROWS = 256
_FLUSH_TIMEOUT_S = 30.0

HAS_RAW_SIZE = """
SELECT count() FROM system.columns
WHERE database = {database:String} AND table = 'dead_letters' AND name = 'raw_size'
"""
# Keyset pages in the table's own order; the payload travels only when it may be replayed (whole, within the
# limit, UTF-8 after any Schema Registry header, as the job reads it: the contract's formats are JSON, so other
# bytes cannot pass), in hex: a header's bytes are not UTF-8, and a String column comes back as text.
PAGE = """
SELECT topic, `partition`, `offset`, size, length(raw) < size AS truncated,
       isValidUTF8(if(length(raw) >= 5 AND substring(raw, 1, 1) = char(0), substring(raw, 6), raw)) AS utf8,
       if(NOT truncated AND size <= {max_bytes:UInt64} AND utf8, hex(raw), '') AS payload
FROM (SELECT *, $size AS size FROM {db}.dead_letters FINAL WHERE $filters)
WHERE (topic, `partition`, `offset`) > ({after_topic:String}, {after_partition:Int32}, {after_offset:Int64})
ORDER BY topic, `partition`, `offset`
LIMIT {page:UInt32}
"""
# The stored copies of the page's ids, by the minute of their event time, in the minutes the job's copy rule
# looks at (rtap.stream.transforms.later_copies: the event's minute and one on either side).
STORED = """
SELECT DISTINCT toString(event_id), toUnixTimestamp(toStartOfMinute(event_time)) DIV 60 FROM (
    SELECT event_id, event_time FROM {db}.events
    WHERE event_time >= {first:DateTime64(3,'UTC')} AND event_time < {last:DateTime64(3,'UTC')}
    UNION ALL
    SELECT event_id, event_time FROM {db}.late_events
    WHERE event_time >= {first:DateTime64(3,'UTC')} AND event_time < {last:DateTime64(3,'UTC')}
)
WHERE has({ids:Array(String)}, toString(event_id))
"""


@dataclass
class ReplayReport:
    """What a replay did with each dead letter it read; every one is counted exactly once."""

    read: int = 0
    replayed: Counter[str] = field(default_factory=Counter)  # per topic
    already_stored: int = 0
    truncated: int = 0
    too_large: int = 0
    not_input_topic: Counter[str] = field(default_factory=Counter)  # per topic
    still_invalid: Counter[str] = field(default_factory=Counter)  # per reason class

    @property
    def replayed_total(self) -> int:
        return sum(self.replayed.values())


@dataclass(frozen=True)
class _Candidate:
    topic: str
    payload: bytes
    event: dict[str, Any]


class _Publisher:
    """An idempotent producer whose delivery failures surface as one BrokerError at :meth:`flush`."""

    def __init__(self, settings: Settings) -> None:
        self._producer = Producer({**settings.kafka.client_config(), "enable.idempotence": True, "acks": "all"})
        self._failures: list[KafkaError] = []

    def _on_delivery(self, error: KafkaError | None, _message: object) -> None:
        if error is not None:
            self._failures.append(error)

    def publish(self, topic: str, key: bytes | None, value: bytes) -> None:
        try:
            produce_waiting(self._producer, topic, key=key, value=value, on_delivery=self._on_delivery)
        except KafkaException as exc:
            raise BrokerError(f"re-publishing a dead letter to {topic} failed: {exc}") from exc
        self._producer.poll(0)

    def flush(self) -> None:
        remaining = self._producer.flush(_FLUSH_TIMEOUT_S)
        if remaining or self._failures:
            first = self._failures[0] if self._failures else f"{remaining} records not acknowledged"
            raise BrokerError(f"re-publishing dead letters failed: {first}")


def _has_raw_size(client: WarehouseClient) -> bool:
    (count,) = client.query_rows(HAS_RAW_SIZE, parameters={"database": client.database})[0]
    return bool(count)


def replay_dead_letters(
    client: WarehouseClient, settings: Settings, filters: Filters, *, dry_run: bool = False, page_rows: int = PAGE_ROWS
) -> ReplayReport:
    """Re-publish the dead letters that ``filters`` selects and that now pass their topic's format."""
    formats = settings.kafka.input_topics
    limit = settings.stream.max_record_bytes
    readers = {
        topic: reader(name, max_record_bytes=limit, max_future_skew_s=settings.stream.max_future_skew_s)
        for topic, name in formats.items()
    }
    sql = PAGE.replace("$size", "raw_size" if _has_raw_size(client) else "length(raw)").replace(
        "$filters", filters.sql()
    )
    publisher = None if dry_run else _Publisher(settings)
    report = ReplayReport()
    after: tuple[str, int, int] = ("", -1, -1)
    while True:
        rows = client.query_rows(
            sql,
            parameters={
                **filters.parameters(),
                "max_bytes": limit,
                "after_topic": after[0],
                "after_partition": after[1],
                "after_offset": after[2],
                "page": page_rows,
            },
        )
        if not rows:
            break
        passed: list[_Candidate] = []  # by the reference validator, in the page's order
        for topic, partition, offset, size, truncated, utf8, payload in rows:
            after = (topic, int(partition), int(offset))
            report.read += 1
            if topic not in formats:
                report.not_input_topic[topic] += 1
            elif truncated:
                report.truncated += 1
            elif size > limit:
                report.too_large += 1
            elif not utf8:
                report.still_invalid["invalid JSON (not UTF-8)"] += 1
            else:
                raw = bytes.fromhex(payload)
                try:
                    event = validate_source(raw, formats[topic])  # bytes: read after any Schema Registry header
                except ContractError as exc:
                    report.still_invalid[reason_class(str(exc))] += 1
                    continue
                passed.append(_Candidate(topic, raw, event))
        candidates = _judged_by_the_job(passed, readers, report)
        stored = _stored_copies(client, [c.event for c in candidates])
        for candidate in candidates:
            minute = _minute(candidate.event["event_time"])
            # the job's copy rule (rtap.stream.transforms.later_copies): the event's minute or one on either side
            if not stored.get(str(candidate.event["event_id"]), set()).isdisjoint((minute - 1, minute, minute + 1)):
                report.already_stored += 1
                continue
            report.replayed[candidate.topic] += 1
            if publisher is not None:
                publisher.publish(candidate.topic, str(candidate.event["session_id"]).encode(), candidate.payload)
    if publisher is not None:
        publisher.flush()
    return report


def _judged_by_the_job(
    passed: list[_Candidate], readers: Mapping[str, SourceReader], report: ReplayReport
) -> list[_Candidate]:
    """Of ``passed``, in order, those the job's own reader of each topic accepts with the record stamped now (its
    bounds on event time); the others counted by the job's reason. One call per topic, as the job makes per batch."""
    by_topic: dict[str, list[int]] = {}
    for index, candidate in enumerate(passed):
        by_topic.setdefault(candidate.topic, []).append(index)
    refused: set[int] = set()
    now_ms = int(time.time() * 1000)
    for topic, indexes in by_topic.items():
        values = [unframed(passed[i].payload) for i in indexes]
        verdict = readers[topic].validate(values, np.full(len(indexes), now_ms, np.int64))
        for index, reason in zip(indexes, verdict.errors.to_pylist(), strict=True):
            if reason is not None:
                report.still_invalid[reason_class(reason)] += 1
                refused.add(index)
    return [candidate for index, candidate in enumerate(passed) if index not in refused]


def _minute(at: datetime) -> int:
    """Minutes since the epoch of ``at`` (the job's minutes: rtap.stream.transforms.event_minutes)."""
    return int(at.timestamp()) // 60


def _stored_copies(client: WarehouseClient, events: list[dict[str, Any]]) -> dict[str, set[int]]:
    """The minutes of the copies ``events`` or ``late_events`` hold of each of ``events``' ids, around their
    times. A dead letter is stored already when a copy lies in its minute or one on either side, the job's rule:
    a copy further away is another event of that id, which the job would store."""
    if not events:
        return {}
    minutes = [_minute(event["event_time"]) for event in events]
    first = datetime.fromtimestamp((min(minutes) - 1) * 60, UTC)
    last = datetime.fromtimestamp((max(minutes) + 2) * 60, UTC)
    rows = client.query_rows(
        STORED, parameters={"first": first, "last": last, "ids": [str(event["event_id"]) for event in events]}
    )
    stored: dict[str, set[int]] = {}
    for event_id, minute in rows:
        stored.setdefault(str(event_id), set()).add(int(minute))
    return stored
