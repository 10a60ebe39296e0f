-- The partial aggregates of every micro-batch, computed by ClickHouse while it inserts the batch's events:
-- one INSERT INTO events feeds all four state tables, where the stream job used to send five more
-- statements per batch (each a round trip through the engine: ~70 ms of the warehouse's ~180 ms per batch
-- at 1,000 events/s). Only accepted events are inserted into events, so only they are aggregated.
--
-- Exactly once: the job's events insert carries its insert_deduplication_token and
-- deduplicate_blocks_in_dependent_materialized_views = 1, so each state table deduplicates its own block.
-- A retried insert whose events block was stored but one view's block was not (a failure half way) writes
-- that view's block and no other; tests/unit/stream/test_sink.py checks both orders of failure.

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.page_views_1m_state_mv TO {db}.page_views_1m_state AS
SELECT toStartOfMinute(event_time) AS window_start, page_url, count() AS views, uniqExactState(user_id) AS users
FROM {db}.events WHERE event_type IN ('page_view', 'product_view')
GROUP BY window_start, page_url;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.events_1m_state_mv TO {db}.events_1m_state AS
SELECT toStartOfMinute(event_time) AS window_start, event_type, count() AS events,
       uniqExactState(user_id) AS users,
       uniqExactStateIf(ifNull(order_id, ''), event_type = 'purchase' AND order_id IS NOT NULL) AS orders,
       sum(if(event_type = 'purchase', toDecimal128(ifNull(price, 0), 6) * ifNull(quantity, 0), toDecimal128(0, 6)))
           AS revenue
FROM {db}.events GROUP BY window_start, event_type;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.sessions_mv TO {db}.sessions AS
SELECT session_id, any(user_id) AS user_id, min(event_time) AS session_start, max(event_time) AS session_end,
       count() AS events, countIf(event_type IN ('page_view', 'product_view')) AS page_views,
       max(event_type = 'add_to_cart') AS reached_cart, max(event_type = 'checkout') AS reached_checkout,
       max(event_type = 'purchase') AS purchased,
       sum(if(event_type = 'purchase', toDecimal128(ifNull(price, 0), 6) * ifNull(quantity, 0), toDecimal128(0, 6)))
           AS revenue
FROM {db}.events GROUP BY session_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.activity_1m_state_users_mv TO {db}.activity_1m_state AS
SELECT toStartOfMinute(event_time) AS window_start, 'user' AS actor_kind, user_id AS actor, count() AS clicks
FROM {db}.events GROUP BY window_start, user_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.activity_1m_state_ips_mv TO {db}.activity_1m_state AS
SELECT toStartOfMinute(event_time) AS window_start, 'ip' AS actor_kind, assumeNotNull(ip_address) AS actor,
       count() AS clicks
FROM {db}.events WHERE ip_address IS NOT NULL GROUP BY window_start, ip_address;
