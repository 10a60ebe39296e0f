-- event_blocks: a write-ahead record of every block the stream job inserts into events, written just before
-- the insert. One INSERT INTO events is not atomic across the tables it feeds: ClickHouse writes events, then
-- each materialized view in turn (event_ids first, the windows' states and sessions after), so a kill between
-- them leaves a block in events that some views lack. Spark's retry of the same batch re-sends the same block
-- under the same token and the views that lack it catch up. A batch cut at other offsets (after a lost
-- checkpoint) finds the block's records stored but holds other records, perhaps only some of the block's: it
-- re-sends the stored block from events itself, under the token and within the event times recorded here, so
-- every view ends with each record exactly once (rtap.stream.sink).
CREATE TABLE IF NOT EXISTS {db}.event_blocks
(
    block_id    UInt64,
    token       String,
    first_time  DateTime64(3, 'UTC'),
    last_time   DateTime64(3, 'UTC'),
    rows        UInt64,
    written_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY block_id
TTL toDateTime(written_at) + INTERVAL 30 DAY
SETTINGS non_replicated_deduplication_window = 10000;
