-- Two aggregate tables keep a row per entity rather than per window: sessions (a row per session, every few events)
-- and activity_1m_state (a row per active user and per client address each minute). Neither is one of the small
-- window tables, yet both kept every row for ever while the events they summarise expire after
-- RTAP_CLICKHOUSE_RETENTION_EVENTS_DAYS. They now expire with them (rtap.warehouse.schema.RETENTION), counted from
-- ingestion like every TTL here, so a replayed or historical event's row does not expire as it is inserted:
-- ingested_at is the newest ingestion time of the row's events. A session whose events were ingested on both
-- sides of the retention drops its older partial row first, as events drops its older events.
-- Rows stored before this migration take their session's end or their minute.
ALTER TABLE {db}.sessions
    ADD COLUMN IF NOT EXISTS ingested_at SimpleAggregateFunction(max, DateTime64(3, 'UTC')) DEFAULT session_end
    AFTER revenue;

ALTER TABLE {db}.sessions_mv MODIFY QUERY
SELECT session_id, any(user_id) AS user_id, min(event_time) AS session_start, max(event_time) AS session_end,
       count() AS events, countIf(event_type IN ('page_view', 'product_view')) AS page_views,
       max(event_type = 'add_to_cart') AS reached_cart, max(event_type = 'checkout') AS reached_checkout,
       max(event_type = 'purchase') AS purchased,
       sum(if(event_type = 'purchase', toDecimal128(ifNull(price, 0), 6) * ifNull(quantity, 0), toDecimal128(0, 6)))
           AS revenue,
       max(ingested_at) AS ingested_at
FROM {db}.events GROUP BY session_id;

ALTER TABLE {db}.activity_1m_state
    ADD COLUMN IF NOT EXISTS ingested_at SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
        DEFAULT toDateTime64(window_start, 3, 'UTC');

ALTER TABLE {db}.activity_1m_state_users_mv MODIFY QUERY
SELECT toStartOfMinute(event_time) AS window_start, 'user' AS actor_kind, user_id AS actor, count() AS clicks,
       max(ingested_at) AS ingested_at
FROM {db}.events GROUP BY window_start, user_id;

ALTER TABLE {db}.activity_1m_state_ips_mv MODIFY QUERY
SELECT toStartOfMinute(event_time) AS window_start, 'ip' AS actor_kind, assumeNotNull(ip_address) AS actor,
       count() AS clicks, max(ingested_at) AS ingested_at
FROM {db}.events WHERE ip_address IS NOT NULL GROUP BY window_start, ip_address;
