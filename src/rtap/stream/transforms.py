"""Pure Arrow -> Arrow transforms of the stream job. No I/O, no session state, no clock.

Each micro-batch of Kafka records goes through :func:`parse_records` (per record: the contract, in Spark's
Python workers) and then :func:`classify` (per batch: event time and duplicates, on the driver), which gives
every record exactly one status; the sink then writes each status to its table. The semantics, chosen so
that a replayed micro-batch (after a crash) or a different batching (after a restart) classifies every
record identically:

- ``dead_letter``: the record breaks the contract (``error`` says why; ``raw`` keeps the payload).
- ``late``: valid, no copy (below), but its event_time is behind the watermark *of its Kafka partition at that
  record*: the partition's high-water mark before it (over the valid records before it in the same partition,
  including earlier micro-batches, passed in as ``high_water``), minus the watermark delay. Tracking the
  watermark per partition and per record, in Kafka order, makes it independent of micro-batch boundaries;
  Spark's built-in watermark moves once per batch, so the same event could be on time in one run and late in
  a replay.

  A record moves its partition's mark to its ``mark_time``: its event_time, but never more than
  :data:`MARK_LEAD_MS` past the record's Kafka timestamp. The event time is the client's clock; the Kafka
  timestamp is the broker's (rtap creates its topics with ``message.timestamp.type=LogAppendTime``), so one
  client whose clock runs ahead cannot make the honest records after it late: an honest record is late only
  when its own delay (its Kafka timestamp minus its event time) exceeds the watermark delay minus the lead.
  The fast record itself is judged by its own event time like any other (the contract dead-letters one that
  is too far ahead: ``StreamSettings.max_future_skew_s``).
- ``duplicate``: valid, and a copy of an event accepted before it: an earlier record (in Kafka order: partition,
  then offset) that carried the same event_id, was accepted, and whose event time lies in the same minute or a
  minute on either side (:func:`later_copies`). A copy is a duplicate even when it is behind the watermark, by up
  to ``COPY_LOOKBACK_MS`` (rtap.contract.vocabulary; a producer resending what it sent before a timeout): its
  event is in ``events`` already, and ``late_events`` holds the events no aggregate counted. Copies in earlier
  batches are found by the sink in the warehouse, which is the dedup state that survives restarts, by the same
  rule: it can look an id up only among a few minutes of events, so the rule in a batch is that lookup's, or the
  same records would count differently as they are cut into batches. Kafka orders records within a partition
  only: a late record whose on-time copy is in another partition is late when the copy comes after it (a later
  partition of the same batch) and a duplicate when the copy came first (an earlier batch). The accepted events,
  and so every aggregate, are the same either way.
- ``accepted``: everything else; goes to ``events`` and the aggregates.

Why the batch-level decisions are vectorised over Arrow on the driver rather than planned as Spark window
functions: a window partitioned by Kafka partition and ordered by offset makes Spark shuffle and sort data
that arrives already in that order, and that sort was most of the job's cost per record (``bench/``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rtap.contract import contract_fields
from rtap.contract.formats import SourceReader
from rtap.contract.model import WIRE_HEADER, WIRE_HEADER_BYTES, unframed
from rtap.contract.validator import arrow_type, record_times_ms
from rtap.contract.vocabulary import ACCEPTED, COPY_LOOKBACK_MS, DEAD_LETTER, DUPLICATE, LATE
from rtap.errors import ContractError

EVENT_COLUMNS = tuple(f.name for f in contract_fields())
_NO_TIME = np.iinfo(np.int64).min
# How far past its Kafka timestamp an event may move its partition's mark: the clocks of honest producers and
# brokers agree to well within this (NTP), and rtap's producer stamps an event at most a few ms ahead of its send.
MARK_LEAD_MS = 1_000
TopicPartition = tuple[str, int]  # the key of per-partition state: partitions are numbered per topic


def parsed_schema() -> pa.Schema:
    """The columns :func:`parse_records` returns: lineage, the contract's typed fields, the verdict."""
    return pa.schema(
        [
            pa.field("kafka_topic", pa.string()),
            pa.field("kafka_partition", pa.int32()),
            pa.field("kafka_offset", pa.int64()),
            pa.field("kafka_timestamp", pa.timestamp("ms", tz="UTC")),
            *(pa.field(f.name, arrow_type(f)) for f in contract_fields()),
            pa.field("error", pa.string()),
            pa.field("raw", pa.binary()),
            pa.field("raw_key", pa.binary()),
            pa.field("raw_size", pa.int32()),  # the value's size as read: ``raw`` keeps at most max_record_bytes
            pa.field("record_bytes", pa.int32()),  # key + value as read: what sizes the next micro-batches
        ]
    )


def parse_records(
    records: pa.RecordBatch, readers: Mapping[str, SourceReader], *, max_raw_bytes: int
) -> pa.RecordBatch:
    """Kafka records (the columns of Spark's Kafka source) -> lineage, typed contract columns, ``error``, ``raw``.

    Each record is read by the reader of its topic's source format (``readers``: topic -> reader), which
    validates it against that format's schema and gives contract-v1 columns (a value in Schema Registry's wire
    format is read after its header: :func:`_payloads`). ``raw`` and ``raw_key`` (the record's bytes, as written)
    are kept only for invalid records: valid ones are fully represented by their columns, and carrying every
    payload to the driver would double the batch's memory. They keep at most ``max_raw_bytes``
    (the record size limit: a larger record is never valid), so that a dead letter of any size the broker
    accepts fits the dead-letter topic and the table; ``raw_size`` keeps the value's real size.
    """
    topics = records.column("topic").cast(pa.string())
    names = pc.unique(topics).to_pylist()
    if not names:
        return pa.RecordBatch.from_pylist([], schema=parsed_schema())
    if len(names) > 1:  # one topic at a time, then back together (classify puts them in Kafka order)
        parts = [
            parse_records(records.filter(pc.equal(topics, name)), readers, max_raw_bytes=max_raw_bytes)
            for name in names
        ]
        return pa.Table.from_batches(parts).combine_chunks().to_batches()[0]
    reader = readers.get(names[0])
    if reader is None:  # the job subscribes to the configured topics only: a record of another is a bug
        raise ContractError(f"no source format configured for topic {names[0]}")
    timestamps = records.column("timestamp").cast(pa.timestamp("ms", tz="UTC"))
    verdict = reader.validate(_payloads(records.column("value")), record_times_ms(timestamps))
    invalid = pc.invert(verdict.valid)
    nothing = pa.nulls(records.num_rows, pa.binary())
    columns = dict(verdict.columns)
    columns["schema_version"] = pc.fill_null(columns["schema_version"], pa.scalar(1, pa.int32()))
    arrays = [
        topics,
        records.column("partition").cast(pa.int32()),
        records.column("offset").cast(pa.int64()),
        timestamps,
        *(columns[name] for name in EVENT_COLUMNS),
        verdict.errors,
        pc.if_else(invalid, _cut(records.column("value"), max_raw_bytes), nothing),
        pc.if_else(invalid, _cut(records.column("key"), max_raw_bytes), nothing),
        pc.fill_null(pc.binary_length(records.column("value")), 0).cast(pa.int32()),
        pc.add(
            pc.fill_null(pc.binary_length(records.column("value")), 0),
            pc.fill_null(pc.binary_length(records.column("key")), 0),
        ).cast(pa.int32()),
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=parsed_schema())


def _payloads(values: pa.Array) -> list[bytes | None]:
    """The documents the readers parse: each value, less a Schema Registry header where it has one
    (:func:`rtap.contract.model.unframed`). The test over the batch is vectorised; most batches have none."""
    payloads: list[bytes | None] = values.to_pylist()
    binary = values.cast(pa.binary())
    framed = pc.and_(
        pc.greater_equal(pc.binary_length(binary), WIRE_HEADER_BYTES), pc.starts_with(binary, pattern=WIRE_HEADER)
    )
    for index in np.flatnonzero(np.asarray(pc.fill_null(framed, False))):
        payloads[index] = unframed(payloads[index])  # type: ignore[arg-type]  # a framed value is never null
    return payloads


# What a dead letter keeps of its value and of its key once its task's dead letters hold their budget
# (:func:`bound_raw`): enough to see what the record was, and ``raw_size`` still says how big it was.
SHORT_RAW_BYTES = 1024


def bound_raw(parsed: pa.RecordBatch, budget: int) -> tuple[pa.RecordBatch, int]:
    """``parsed`` with the ``raw`` and ``raw_key`` of its dead letters cut to :data:`SHORT_RAW_BYTES` from the
    row where, in order, they would hold more than ``budget`` bytes in all; and the bytes they hold then.

    Why: each dead letter keeps up to ``max_record_bytes`` of value and of key, and a batch is capped in records
    by the sizes of the records before it, so a producer that turns to records near that size, all invalid,
    could bring batch-cap x 128 KiB into the driver (200,000 of them: 25 GiB) and kill it on every restart, as
    Spark re-reads the same planned range. Spread over its tasks, ``max_batch_bytes`` bounds the batch.
    """
    raw, raw_key = parsed.column("raw"), parsed.column("raw_key")
    sizes = np.asarray(pc.add(pc.fill_null(pc.binary_length(raw), 0), pc.fill_null(pc.binary_length(raw_key), 0)))
    held = np.cumsum(sizes)
    over = held > budget
    if not over.any():
        return parsed, int(held[-1]) if len(held) else 0
    mask = pa.array(over)
    columns = dict(zip(parsed.schema.names, parsed.columns, strict=True))
    columns["raw"] = pc.if_else(mask, _cut(raw, SHORT_RAW_BYTES), raw)
    columns["raw_key"] = pc.if_else(mask, _cut(raw_key, SHORT_RAW_BYTES), raw_key)
    bounded = pa.RecordBatch.from_arrays(list(columns.values()), schema=parsed.schema)
    kept = pc.add(
        pc.fill_null(pc.binary_length(columns["raw"]), 0), pc.fill_null(pc.binary_length(columns["raw_key"]), 0)
    )
    return bounded, int(pc.sum(kept).as_py() or 0)


def _cut(values: pa.Array, limit: int) -> pa.Array:
    """Binary values cut to their first ``limit`` bytes."""
    return pc.binary_slice(values.cast(pa.binary()), 0, limit)


def _in_kafka_order(parsed: pa.Table) -> pa.Table:
    """``parsed`` in Kafka order: by topic, partition and offset.

    Spark hands a batch back as one run of records per Kafka partition, each in offset order, but the runs in the
    order of its tasks (two Kafka partitions' runs interleave: 0, 2, 4, 1, 3, 5). Then the runs are put in order
    as slices of the table, which copies nothing (2.7 -> 0.8 ms for 16,000 records: ``bench/bench_driver.py``);
    a full sort, a copy of every column, only when a run is out of offset order or a partition comes in two runs.
    """
    if parsed.num_rows < 2:
        return parsed
    topics = parsed.column("kafka_topic")
    names = pa.array(sorted(pc.unique(topics).to_pylist()), pa.string())
    # (topic's rank, partition) as one integer: partitions are int32, so the rank goes above their bits.
    rank = np.asarray(pc.index_in(topics, value_set=names)).astype(np.int64)
    run = (rank << 32) | np.asarray(parsed.column("kafka_partition")).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, run[1:] != run[:-1]])
    within = np.diff(np.asarray(parsed.column("kafka_offset")))[run[1:] == run[:-1]]
    keys = run[starts]
    if not np.all(within > 0) or len(np.unique(keys)) < len(keys):
        return parsed.sort_by(
            [("kafka_topic", "ascending"), ("kafka_partition", "ascending"), ("kafka_offset", "ascending")]
        )
    if np.all(np.diff(keys) > 0):
        return parsed
    ends = np.r_[starts[1:], parsed.num_rows]
    return pa.concat_tables([parsed.slice(starts[i], ends[i] - starts[i]) for i in np.argsort(keys)])


def mark_times(parsed: pa.Table, valid: np.ndarray) -> np.ndarray:
    """Per record, epoch ms: how far it moves its partition's high-water mark (``_NO_TIME``: not at all).

    The event time, capped at the record's Kafka timestamp plus :data:`MARK_LEAD_MS` (see the module docstring).
    """
    times = np.asarray(pc.fill_null(parsed.column("event_time").cast(pa.int64()), _NO_TIME))
    kafka = np.asarray(pc.fill_null(parsed.column("kafka_timestamp").cast(pa.int64()), _NO_TIME))
    capped = np.where(kafka == _NO_TIME, times, np.minimum(times, kafka + MARK_LEAD_MS))
    return np.where(valid & (times != _NO_TIME), capped, _NO_TIME)


def _behind_ms(
    parsed: pa.Table, valid: np.ndarray, marks: np.ndarray, high_water: Mapping[TopicPartition, datetime], delay_ms: int
) -> np.ndarray:
    """Per record, ms: how far a valid record's event time is behind its watermark, (the partition's mark before it)
    - delay; 0 when it is not (or the record is invalid). ``marks``: each record's :func:`mark_times`;
    ``high_water``: the marks committed by earlier batches."""
    # Topics as small integer codes: comparing Python strings per record would cost more than the rest here.
    encoded = pc.dictionary_encode(parsed.column("kafka_topic").combine_chunks())
    names = encoded.dictionary.to_pylist()
    topics = np.asarray(encoded.indices)
    partitions = np.asarray(parsed.column("kafka_partition"))
    times = np.asarray(pc.fill_null(parsed.column("event_time").cast(pa.int64()), _NO_TIME))
    times = np.where(valid, times, _NO_TIME)
    behind = np.zeros(len(times), dtype=np.int64)
    if len(times) == 0:
        return behind
    starts = np.flatnonzero(np.r_[True, (partitions[1:] != partitions[:-1]) | (topics[1:] != topics[:-1])])
    for start, end in zip(starts, np.r_[starts[1:], len(times)], strict=True):
        carried = high_water.get((names[topics[start]], int(partitions[start])))
        initial = _NO_TIME if carried is None else int(carried.timestamp() * 1000)
        running = np.maximum.accumulate(np.r_[initial, marks[start:end]])[:-1]  # the mark *before* each record
        watermark = np.where(running == _NO_TIME, _NO_TIME, running - delay_ms)  # no valid record yet: none
        late = valid[start:end] & (times[start:end] < watermark)
        behind[start:end] = np.where(late, watermark - times[start:end], 0)
    return behind


def judged_for_copies(behind_ms: np.ndarray) -> np.ndarray:
    """Per record (``behind_ms``: classify's column), whether it may be judged a copy of an accepted event: on time
    or at most ``COPY_LOOKBACK_MS`` behind its watermark. The one rule classify and the sink's lookup both follow."""
    return np.asarray(behind_ms) <= COPY_LOOKBACK_MS


def event_minutes(times: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Event times (Arrow timestamps) as whole minutes since the epoch: what :func:`later_copies` compares."""
    millis = pc.fill_null(times.cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64()), 0)
    minutes: np.ndarray = np.floor_divide(np.asarray(millis), 60_000)
    return minutes


def later_copies(
    event_ids: pa.Array,
    minutes: np.ndarray,
    candidates: np.ndarray,
    *,
    stored: Mapping[str, Iterable[int]] | None = None,
    kept: np.ndarray | None = None,
    acceptable: np.ndarray | None = None,
) -> np.ndarray:
    """Per record: a candidate that copies an event accepted before it, which is then a duplicate.

    A candidate copies an accepted event when that event carries its event_id and lies in its minute or a minute
    on either side (``minutes``: :func:`event_minutes`). The accepted events are those of ``stored`` (event_id ->
    the minutes of copies stored by earlier batches) and the candidates before it (table order) that this rule
    accepted, or that ``kept`` marks as accepted already (stored by an earlier attempt at the batch). A candidate
    that copies none is accepted only where ``acceptable`` (default: all): a record behind its watermark can be a
    copy, but is never the accepted event later copies are judged against. A candidate two minutes or more from
    every accepted copy is another event of that id: the warehouse finds a stored copy by its id among the minutes
    around it only (rtap.stream.sink.STORED_COPIES), so a wider rule here would make the same records count
    differently as they are cut into batches.

    Only the ids seen twice, or stored, are walked one by one; a set of accepted minutes per id keeps a hostile
    batch of one id repeated (any number of times, at any times) linear.
    """
    later = np.zeros(len(candidates), dtype=bool)
    positions = np.flatnonzero(candidates)
    if not len(positions):
        return later
    encoded = pc.dictionary_encode(event_ids.take(pa.array(positions)))
    codes = np.asarray(encoded.indices)
    stored = stored or {}
    walk = np.bincount(codes) > 1  # per distinct id (Arrow's, not Python strings: most batches have few to walk)
    if stored:
        walk |= np.asarray(pc.is_in(encoded.dictionary, value_set=pa.array(list(stored), pa.string())))
    walked = walk[codes]
    if not walked.any():
        return later
    names = dict(zip(np.flatnonzero(walk).tolist(), encoded.dictionary.filter(pa.array(walk)).to_pylist(), strict=True))
    accepted: dict[int, set[int]] = {}
    for position, code in zip(positions[walked], codes[walked], strict=True):
        seen = accepted.get(code)
        if seen is None:
            seen = accepted[code] = set(stored.get(names[code], ()))
        minute = int(minutes[position])
        if (kept is None or not kept[position]) and not seen.isdisjoint((minute - 1, minute, minute + 1)):
            later[position] = True
        elif acceptable is None or acceptable[position]:
            seen.add(minute)
    return later


def classify(parsed: pa.Table, *, high_water: Mapping[TopicPartition, datetime], watermark_delay_s: float) -> pa.Table:
    """The whole per-batch decision: every parsed record gets exactly one status (``status``, one of
    :data:`rtap.contract.vocabulary.STATUSES`), ``mark_time``, how far it moves its partition's mark (null: not at
    all), and ``behind_ms``, how far a valid record is behind its partition's watermark (0: on time). One behind is
    ``late``, or ``duplicate`` when it copies an accepted event and is at most ``COPY_LOOKBACK_MS`` behind; the
    sink judges every record within that bound again against stored copies.

    Rows come back in Kafka order (topic, partition, offset).
    """
    parsed = _in_kafka_order(parsed)
    valid = np.asarray(pc.is_null(parsed.column("error")))
    marks = mark_times(parsed, valid)
    behind = _behind_ms(parsed, valid, marks, high_water, int(watermark_delay_s * 1000))
    late = behind > 0
    event_ids = parsed.column("event_id").combine_chunks()
    checked = valid & judged_for_copies(behind)
    duplicate = later_copies(event_ids, event_minutes(parsed.column("event_time")), checked, acceptable=~late)
    status = np.full(parsed.num_rows, ACCEPTED, dtype=object)
    status[~valid] = DEAD_LETTER
    status[late] = LATE
    status[duplicate] = DUPLICATE
    mark_time = pa.array(marks, pa.int64(), mask=marks == _NO_TIME).cast(pa.timestamp("ms", tz="UTC"))
    return (
        parsed.append_column("status", pa.array(status, pa.string()))
        .append_column("mark_time", mark_time)
        .append_column("behind_ms", pa.array(behind, pa.int64()))
    )
