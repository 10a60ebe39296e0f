-- event_ids keeps each event's time (issue 24: panels read what they show). The "events in range" panel's rate
-- runs from the first event of the range's first window to the last of its newest, and it read them from events,
-- whose key (the hour, the type, the id) cannot narrow below the hour: every refresh read the whole hour's event
-- times (271 ms for the live hour after an hour at 10,000 events/s; bench/results/panels.md). event_ids is keyed
-- by the minute, so one minute's times are a read of that minute's rows.
-- Rows stored before this migration take their minute as their time: an edge of a range that is older than the
-- migration is drawn up to a minute wide, and only there.
ALTER TABLE {db}.event_ids
    ADD COLUMN IF NOT EXISTS event_time DateTime64(3, 'UTC') DEFAULT minute CODEC(Delta, ZSTD(1)) AFTER event_id;

ALTER TABLE {db}.event_ids_mv MODIFY QUERY
SELECT toStartOfMinute(event_time) AS minute, event_id, event_time, kafka_topic, kafka_partition, kafka_offset,
       block_id, ingested_at
FROM {db}.events;
