-- Copies of an event_id two minutes or more apart are two events (rtap.stream.transforms.later_copies): the job
-- looks a copy up among the events of its minute and the minute on either side (event_ids' key), and judges copies
-- in one batch by the same rule, so that the same records count the same however they are cut into batches. Both
-- copies are then in events and in every aggregate; events' key ended with event_id, so FINAL collapsed two such
-- copies of one hour and type into one row, and `events FINAL` counted fewer than the windows.
--
-- dedup_minute: the minute of the event time, the sink's to write (toStartOfMinute(event_time)), as the last key
-- column. ClickHouse adds a column to a sorting key only in the ALTER that creates it and without a default, so
-- rows stored before read 1970-01-01 here and keep the key they had (a copy of one of them is still found by
-- event_ids).
ALTER TABLE {db}.events
    ADD COLUMN IF NOT EXISTS dedup_minute DateTime('UTC'),
    MODIFY ORDER BY (toStartOfHour(event_time), event_type, event_id, dedup_minute);

-- late_events keeps the columns of events (a late event can be read, and replayed, as one).
ALTER TABLE {db}.late_events ADD COLUMN IF NOT EXISTS dedup_minute DateTime('UTC');
