-- Several input topics, each with its source format (issue #15: the previous system's topic beside rtap's).
-- Kafka numbers partitions per topic, so every per-partition fact is now keyed by topic, then partition:
--
-- - pipeline_batches: topic_high_water and topic_end_offsets (topic -> partition -> value) are the job's
--   state from now on. Rows written before this migration have them empty; their partition_high_water and
--   end_offsets belong to the contract-v1 topic (RTAP_KAFKA_TOPIC), the only one there was, and the job reads
--   them as such (rtap.stream.sink, rtap.stream.gaps).
-- - events and late_events: kafka_topic names each row's source record with kafka_partition and kafka_offset
--   ('' on rows written before: the contract-v1 topic). late_events is keyed by its source record, so the
--   topic joins its key: the same partition and offset in two topics are two records.
ALTER TABLE {db}.pipeline_batches
    ADD COLUMN IF NOT EXISTS topic_high_water Map(String, Map(Int32, DateTime64(3, 'UTC'))),
    ADD COLUMN IF NOT EXISTS topic_end_offsets Map(String, Map(Int32, Int64));

ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS kafka_topic LowCardinality(String) AFTER schema_version;

ALTER TABLE {db}.late_events
    ADD COLUMN IF NOT EXISTS kafka_topic LowCardinality(String) AFTER schema_version,
    MODIFY ORDER BY (kafka_partition, kafka_offset, kafka_topic);
