-- The table of the system rtap replaces, carried over as a read-only view: its Spark job wrote clicks per
-- page per 1-minute window into real_time_analytics.clickstream_aggregates (window_start, window_end,
-- page_url, click_count), and its SQL and Metabase questions read that. Here the same columns come from
-- rtap's own windows, so nothing is written twice and the numbers are rtap's exact ones.
--
-- A click is a page view: an event of a type that counts as a page view (page_view, product_view), which
-- is what page_views_1m.views counts. The previous system's events (one click on a page each) are page
-- views when rtap reads them. Windows are rtap's: 1-minute tumbling, UTC, on-time events deduplicated by
-- event_id (late events are in late_events and counted in no window).
--
-- FINAL inside the view: page_views_1m is a ReplacingMergeTree(version) that gets a newer row for a window
-- each time a batch refines it; FINAL shows only the newest, so a reader's sum is exact whenever it reads.
CREATE VIEW IF NOT EXISTS {db}.clickstream_aggregates AS
SELECT
    window_start,
    window_start + INTERVAL 1 MINUTE AS window_end,
    CAST(page_url AS String) AS page_url,
    views AS click_count
FROM {db}.page_views_1m FINAL;

-- The previous system's database name too, for SQL that names it. Created once per server: with several
-- rtap databases on one server it points at the first one migrated.
CREATE DATABASE IF NOT EXISTS real_time_analytics;

-- The previous system's own table, left on a server that rtap now uses, must not be shadowed or replaced
-- (CREATE OR REPLACE VIEW would replace a table and its data): stop and say what to do.
SELECT throwIf(count() > 0, 'real_time_analytics.clickstream_aggregates exists and is not a view (the previous system''s table?): keep its rows with RENAME TABLE real_time_analytics.clickstream_aggregates TO real_time_analytics.clickstream_aggregates_previous, then run rtap migrate again')
FROM system.tables
WHERE database = 'real_time_analytics' AND name = 'clickstream_aggregates' AND engine != 'View';

CREATE VIEW IF NOT EXISTS real_time_analytics.clickstream_aggregates AS
SELECT window_start, window_end, page_url, click_count
FROM {db}.clickstream_aggregates;
