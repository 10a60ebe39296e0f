"""Stored history for a benchmark: ``minutes`` of clickstream at ``rate`` events/s, written straight into the
warehouse's ``events`` (its materialized views fill the windows' states, the sessions, ``event_ids``), ending
at a given moment. What a dashboard reads after the job has run that long, without running it that long.

The rows are synthetic but shaped like the generator's traffic where a panel's cost depends on it: a mix of event
types (3% purchases), 50,000 users each with a session per half hour, 500 pages, 300 products, 250 addresses,
ids spread over the whole UUID space, and one event in a thousand from the collector's topic. One INSERT per
minute; then the windows' final rows are written from their states, as the stream job's sink writes them
(rtap.stream.sink.rewrite_final_rows), and every table is merged (OPTIMIZE ... FINAL), as background merges
leave it by the end of an hour.
``pipeline_batches``, ``dead_letters`` and ``late_events`` stay empty: their panels read a row per batch or per
rejected record, not per event.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from rtap.settings import KafkaSettings, StreamSettings
from rtap.stream.sink import rewrite_final_rows
from rtap.warehouse import WarehouseClient

_FILL = """
INSERT INTO {db}.events (event_id, event_type, event_time, user_id, session_id, page_url, product_id, price, quantity,
                         order_id, ip_address, schema_version, kafka_topic, kafka_partition, kafka_offset,
                         kafka_timestamp, batch_id, ingested_at)
SELECT reinterpretAsUUID(MD5(concat('rtap-history-', toString(number)))),
       multiIf(number % 100 < 60, 'page_view', number % 100 < 80, 'product_view', number % 100 < 88, 'add_to_cart',
               number % 100 < 90, 'remove_from_cart', number % 100 < 94, 'checkout', number % 100 < 97, 'purchase',
               'search'),
       {start:DateTime64(3, 'UTC')} + number / {rate:UInt32},
       concat('u', toString(number % 50000)),
       concat('s', toString(number % 50000), '-', toString(intDiv(number, {rate:UInt32} * 1800))),
       concat('/p/', toString(number % 500)), concat('prod', toString(number % 300)), toDecimal64(9.99, 6), 1,
       if(number % 100 >= 94 AND number % 100 < 97, concat('o', toString(number)), NULL),
       concat('10.0.', toString(number % 250), '.0'), 1,
       if(number % 1000 = 0, {browser_topic:String}, {topic:String}), number % 6, number,
       {start:DateTime64(3, 'UTC')} + number / {rate:UInt32}, 0, now64(3)
FROM numbers({first:UInt64}, {count:UInt64})
"""


def fill_history(client: WarehouseClient, *, end: datetime, minutes: int, rate: int) -> int:
    """``minutes`` of events at ``rate`` events/s of event time, up to ``end``; the number of events written."""
    start = end - timedelta(minutes=minutes)
    kafka = KafkaSettings()
    per_minute = 60 * rate
    for minute in range(minutes):
        parameters = {
            "start": start,
            "rate": rate,
            "first": minute * per_minute,
            "count": per_minute,
            "topic": kafka.topic,
            "browser_topic": kafka.browser_topic,
        }
        client.command(_FILL, parameters=parameters)
    touched = [start + timedelta(minutes=m) for m in range(minutes)]
    rewrite_final_rows(client, touched, int(StreamSettings().bot_clicks_per_minute))
    # The merges an hour of batches leaves behind have run by the hour's end; after a fill in one go they would
    # still be running, on the cores the measurement uses, so they run now.
    for (table,) in client.query_rows(
        "SELECT name FROM system.tables WHERE database = {database:String} AND engine LIKE '%MergeTree'",
        parameters={"database": client.database},
    ):
        client.command(f"OPTIMIZE TABLE {{db}}.{table} FINAL")
    return minutes * per_minute
