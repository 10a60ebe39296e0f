-- The payload bytes each micro-batch read (Kafka keys and values). The job sizes its next micro-batches by
-- the bytes per record of the last ones (RTAP_STREAM_MAX_BATCH_BYTES); 0 for batches written before this.
ALTER TABLE {db}.pipeline_batches ADD COLUMN IF NOT EXISTS input_bytes UInt64 DEFAULT 0;
