-- Exact on any input (issue #22): a duplicate lookup whose cost follows the batch, record-level idempotent
-- writes that hold under a new checkpoint, and dead letters of any size.
--
-- event_ids: every stored event's id, keyed by the minute of its event time, then the id. The stream job
-- looks up a batch's candidates here, in the minutes they fall in and the minute on either side (a copy of
-- an event carries its event time: verbatim re-sends exactly, the browser tracker's re-sends within the
-- network's jitter). Reading a few minutes by key costs the same in an hour's first minute as in a month's
-- last; reading `events`, whose key starts with the hour and then the type, read the whole hour every batch.
-- The lookup also tells which Kafka record stored the id (a copy from another record is a duplicate; the
-- same record means an earlier attempt at this batch already wrote it) and which insert block did (block_id).
CREATE TABLE IF NOT EXISTS {db}.event_ids
(
    minute          DateTime('UTC'),
    event_id        UUID,
    kafka_topic     LowCardinality(String),
    kafka_partition Int32,
    kafka_offset    Int64,
    block_id        UInt64,
    ingested_at     DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(minute)
ORDER BY (minute, event_id)
TTL toDateTime(ingested_at) + INTERVAL 30 DAY
SETTINGS non_replicated_deduplication_window = 10000;

-- block_id: a digest of the Kafka records of the insert that wrote the row (rtap.stream.sink). A retry of
-- the same block re-sends it whole under the same deduplication token (so a view that missed it catches up);
-- a batch cut at other offsets (a lost checkpoint) skips the records an earlier block already stored.
ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS block_id UInt64 DEFAULT 0;
ALTER TABLE {db}.late_events ADD COLUMN IF NOT EXISTS block_id UInt64 DEFAULT 0;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.event_ids_mv TO {db}.event_ids AS
SELECT toStartOfMinute(event_time) AS minute, event_id, kafka_topic, kafka_partition, kafka_offset, block_id,
       ingested_at
FROM {db}.events;

-- The ids stored before this migration (a copy the view also wrote meanwhile is one row under FINAL, and the
-- lookup reads DISTINCT).
INSERT INTO {db}.event_ids
SELECT toStartOfMinute(event_time), event_id, kafka_topic, kafka_partition, kafka_offset, block_id, ingested_at
FROM {db}.events;

-- raw_size: the payload's size as received. `raw` keeps at most RTAP_STREAM_MAX_RECORD_BYTES of it (a record
-- beyond that is never valid), so a dead letter of any size fits the table and the dead-letter topic; a
-- dead letter whose raw_size exceeds length(raw) was cut and cannot be replayed.
ALTER TABLE {db}.dead_letters ADD COLUMN IF NOT EXISTS raw_size UInt32 DEFAULT length(raw) AFTER raw;
