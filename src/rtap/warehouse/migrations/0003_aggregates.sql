-- Windowed metrics. Each has two tables:
--   *_state  AggregatingMergeTree: one row of mergeable partial aggregates per micro-batch and key,
--            written while the stream job inserts a batch's events (materialized views, migration 0008). uniqExact states merge
--            exactly, so distinct users stay exact across micro-batches, retries and restarts.
--   the table readers query: a ReplacingMergeTree(version), rewritten for every window a batch touched
--            from the merged states, version = batch id, so FINAL shows the newest, exact row.
-- Read contract: `SELECT window_start, page_url, views, unique_users FROM {db}.page_views_1m FINAL`.
-- No TTL here: aggregates are small, and a TTL on window_start would drop replayed history on insert.
-- Open windows are visible after the first batch that touches them, and refined by later batches.

CREATE TABLE IF NOT EXISTS {db}.page_views_1m_state
(
    window_start DateTime('UTC'),
    page_url     LowCardinality(String),
    views        SimpleAggregateFunction(sum, UInt64),
    users        AggregateFunction(uniqExact, String)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (window_start, page_url)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS {db}.page_views_1m
(
    window_start DateTime('UTC'),
    page_url     LowCardinality(String),
    views        UInt64,
    unique_users UInt64,
    version      Int64,
    updated_at   DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (window_start, page_url);

CREATE TABLE IF NOT EXISTS {db}.events_1m_state
(
    window_start DateTime('UTC'),
    event_type   LowCardinality(String),
    events       SimpleAggregateFunction(sum, UInt64),
    users        AggregateFunction(uniqExact, String),
    orders       AggregateFunction(uniqExact, String),
    revenue      SimpleAggregateFunction(sum, Decimal(38, 6))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (window_start, event_type)
SETTINGS non_replicated_deduplication_window = 10000;

-- revenue = sum(price * quantity) of purchases (0 for other types), orders = distinct order_id.
CREATE TABLE IF NOT EXISTS {db}.events_1m
(
    window_start DateTime('UTC'),
    event_type   LowCardinality(String),
    events       UInt64,
    users        UInt64,
    orders       UInt64,
    revenue      Decimal(38, 6),
    version      Int64,
    updated_at   DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (window_start, event_type);

-- Sessions keyed by the client's session_id. Every column is a SimpleAggregateFunction, so a plain
-- `SELECT ... FROM {db}.sessions FINAL` returns merged values. A session is closed once its last
-- event is older than the inactivity gap (RTAP_STREAM_SESSION_GAP_S, default 30 min) behind the
-- watermark, the abandoned-cart flag is derived, not stored.
CREATE TABLE IF NOT EXISTS {db}.sessions
(
    session_id       String,
    user_id          SimpleAggregateFunction(any, String),
    session_start    SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    session_end      SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    events           SimpleAggregateFunction(sum, UInt64),
    page_views       SimpleAggregateFunction(sum, UInt64),
    reached_cart     SimpleAggregateFunction(max, UInt8),
    reached_checkout SimpleAggregateFunction(max, UInt8),
    purchased        SimpleAggregateFunction(max, UInt8),
    revenue          SimpleAggregateFunction(sum, Decimal(38, 6)),
    abandoned_cart   UInt8 ALIAS reached_cart AND NOT purchased
)
ENGINE = AggregatingMergeTree
ORDER BY session_id
SETTINGS non_replicated_deduplication_window = 10000;

-- Per-minute click counts per actor (a user or an IP), the input of bot detection.
CREATE TABLE IF NOT EXISTS {db}.activity_1m_state
(
    window_start DateTime('UTC'),
    actor_kind   LowCardinality(String),
    actor        String,
    clicks       SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (window_start, actor_kind, actor)
SETTINGS non_replicated_deduplication_window = 10000;

-- Bot suspects: per window, users or IPs whose clicks exceed RTAP_STREAM_BOT_CLICKS_PER_MINUTE.
CREATE TABLE IF NOT EXISTS {db}.bot_suspects
(
    window_start DateTime('UTC'),
    actor_kind   LowCardinality(String),
    actor        String,
    clicks       UInt64,
    threshold    UInt64,
    version      Int64,
    updated_at   DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (window_start, actor_kind, actor);
