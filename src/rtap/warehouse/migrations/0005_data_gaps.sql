-- Data gaps: ranges of the input topic that Kafka deleted (retention) before the stream job read them,
-- skipped only because the operator said so (`rtap stream --accept-data-loss`). Nothing in the pipeline
-- can recover these records; this table makes the loss a number with offsets instead of a silent hole,
-- and `rtap reconcile` reports it. A gap is [first_offset, end_offset): end_offset is the partition's
-- log start offset when the gap was found, where the job resumed.
-- Keyed by (topic, partition, first_offset): a gap recorded twice (a crash between recording it and
-- resuming) collapses under FINAL, the later detection (possibly a longer range) winning.
CREATE TABLE IF NOT EXISTS {db}.data_gaps
(
    detected_at  DateTime64(3, 'UTC'),
    topic        LowCardinality(String),
    `partition`  Int32,
    first_offset Int64,
    end_offset   Int64,
    records      UInt64,
    reason       LowCardinality(String),
    pipeline_id  String
)
ENGINE = ReplacingMergeTree(detected_at)
ORDER BY (topic, `partition`, first_offset);
