-- One row per micro-batch, written last: it is the batch's commit record. The next batch reads the
-- per-partition event-time high-water marks from here, which makes late classification identical
-- when a batch is replayed after a crash. Keyed by (query_id, batch_id): replays collapse under FINAL.
CREATE TABLE IF NOT EXISTS {db}.pipeline_batches
(
    query_id         String,
    batch_id         Int64,
    started_at       DateTime64(3, 'UTC'),
    finished_at      DateTime64(3, 'UTC'),
    input_rows       UInt64,
    valid            UInt64,
    duplicates       UInt64,
    late             UInt64,
    dead_letters     UInt64,
    duration_ms      UInt64,
    rows_per_second  Float64,
    watermark        Nullable(DateTime64(3, 'UTC')),
    max_event_time   Nullable(DateTime64(3, 'UTC')),
    freshness_ms     Nullable(Int64),
    kafka_lag        Int64,
    partition_high_water Map(Int32, DateTime64(3, 'UTC')),
    end_offsets      Map(Int32, Int64)
)
ENGINE = ReplacingMergeTree(finished_at)
PARTITION BY toYYYYMM(started_at)
ORDER BY (query_id, batch_id)
TTL toDateTime(started_at) + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 10000;
