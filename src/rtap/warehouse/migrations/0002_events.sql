-- Raw events: valid, on time, deduplicated. Columns follow contract v1 (a unit test fails on drift),
-- then lineage columns that let any row be traced to its Kafka record and micro-batch.
--
-- Why ReplacingMergeTree: inserts are made idempotent by insert_deduplication_token per micro-batch,
-- and the sort key contains event_id, so even a copy that slipped past both (a replay after the Spark
-- checkpoint was deleted) collapses under FINAL. `SELECT count() FROM {db}.events FINAL` is exact.
-- Why this ORDER BY: dashboards filter by time and type, and event_id last makes the key unique per event.
-- Why PARTITION BY day: bounded part count, cheap retention. The TTL counts from ingestion, never from
-- event_time: a TTL on event_time would silently delete replayed or historical events on insert.
CREATE TABLE IF NOT EXISTS {db}.events
(
    event_id        UUID,
    event_type      LowCardinality(String),
    event_time      DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    user_id         String CODEC(ZSTD(1)),
    session_id      String CODEC(ZSTD(1)),
    page_url        LowCardinality(String),
    referrer        LowCardinality(Nullable(String)),
    ip_address      Nullable(String) CODEC(ZSTD(1)),
    user_agent      LowCardinality(Nullable(String)),
    device          LowCardinality(Nullable(String)),
    country         LowCardinality(Nullable(String)),
    product_id      Nullable(String) CODEC(ZSTD(1)),
    category        LowCardinality(Nullable(String)),
    price           Nullable(Decimal(18, 6)),
    quantity        Nullable(Int32),
    order_id        Nullable(String) CODEC(ZSTD(1)),
    schema_version  UInt8,
    kafka_partition Int32,
    kafka_offset    Int64 CODEC(Delta, ZSTD(1)),
    kafka_timestamp DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    batch_id        Int64,
    ingested_at     DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(event_time)
ORDER BY (toStartOfHour(event_time), event_type, event_id)
TTL toDateTime(ingested_at) + INTERVAL 30 DAY
SETTINGS non_replicated_deduplication_window = 10000;

-- Late events: valid but behind the watermark when processed. Same columns as events, kept apart so
-- that no aggregate counts them and an analyst can still see (and replay) them.
-- Key = the Kafka record (partition, offset): unique per input record, so replays collapse under FINAL.
CREATE TABLE IF NOT EXISTS {db}.late_events AS {db}.events
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(ingested_at)
ORDER BY (kafka_partition, kafka_offset)
TTL toDateTime(ingested_at) + INTERVAL 30 DAY
SETTINGS non_replicated_deduplication_window = 10000;

-- Dead letters: records that break the contract, with the reason and the raw payload, byte for byte
-- as received (base64 is not needed: String holds arbitrary bytes). Keyed by the source record.
CREATE TABLE IF NOT EXISTS {db}.dead_letters
(
    received_at     DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    topic           LowCardinality(String),
    `partition`     Int32,
    `offset`        Int64,
    kafka_timestamp DateTime64(3, 'UTC'),
    error           String,
    raw             String CODEC(ZSTD(3)),
    batch_id        Int64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(received_at)
ORDER BY (topic, `partition`, `offset`)
TTL toDateTime(received_at) + INTERVAL 30 DAY
SETTINGS non_replicated_deduplication_window = 10000;
