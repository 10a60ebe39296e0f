"""Migration 0006 on a real chDB: the previous system's table as a view over rtap's windows, exact.

The system rtap replaces read ``real_time_analytics.clickstream_aggregates (window_start, window_end,
page_url, click_count)``; its SQL must keep working against rtap, with rtap's numbers. The rows are seeded
with the dashboard tests' seed (page views per page per minute, known by hand).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from rtap.errors import QueryRejectedError, WarehouseError
from rtap.settings import Settings, WarehouseSettings
from rtap.warehouse import WarehouseClient, create_client
from rtap.warehouse.migrate import apply_migrations, load_migrations
from tests.support.seed import PAGES, minute_floor, seed_page_views

MINUTES = 10
PREVIOUS_TABLE = "real_time_analytics.clickstream_aggregates"
# The previous system's table, column for column (its DateTime had no zone; rtap's windows are UTC).
PREVIOUS_COLUMNS = [
    ("window_start", "DateTime('UTC')"),
    ("window_end", "DateTime('UTC')"),
    ("page_url", "String"),
    ("click_count", "UInt64"),
]
# The previous system's one Metabase question, as its users wrote it.
MOST_CLICKED = """
SELECT page_url, sum(click_count) AS clicks
FROM real_time_analytics.clickstream_aggregates
GROUP BY page_url
ORDER BY clicks DESC, page_url
"""


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("rtap-previous-view"))


@pytest.fixture(scope="module")
def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture(scope="module")
def writer(settings: Settings, now: datetime) -> Iterator[WarehouseClient]:
    """A migrated chDB with ten minutes of page views per page."""
    with create_client(settings) as client:
        apply_migrations(client)
        seed_page_views(client, now, minutes=MINUTES)
        yield client


@pytest.fixture(scope="module")
def reader(settings: Settings, writer: WarehouseClient) -> Iterator[WarehouseClient]:
    with create_client(settings, readonly=True) as client:
        yield client


def seeded_views(minute: int, page_index: int) -> int:
    """What seed_page_views writes for a page, ``minute`` minutes before the newest window."""
    return 10 * (page_index + 1) + minute


def test_the_view_has_the_previous_tables_columns(settings: Settings, reader: WarehouseClient) -> None:
    for table in (f"{settings.warehouse.database}.clickstream_aggregates", PREVIOUS_TABLE):
        database, name = table.split(".")
        columns = reader.query_rows(
            "SELECT name, type FROM system.columns WHERE database = {d:String} AND table = {t:String} "
            "ORDER BY position",
            parameters={"d": database, "t": name},
        )
        assert columns == PREVIOUS_COLUMNS, table


def test_one_row_per_page_and_minute_with_rtaps_page_views(reader: WarehouseClient, now: datetime) -> None:
    rows = reader.query_rows(
        "SELECT toUnixTimestamp(window_start), toUnixTimestamp(window_end), page_url, click_count "
        f"FROM {PREVIOUS_TABLE} ORDER BY window_start, page_url"
    )
    newest = int(minute_floor(now).timestamp())
    assert rows == sorted(
        (newest - 60 * minute, newest - 60 * minute + 60, page, seeded_views(minute, index))
        for minute in range(MINUTES)
        for index, page in enumerate(PAGES)
    )


def test_a_refined_window_counts_once_with_its_newest_clicks(
    writer: WarehouseClient, reader: WarehouseClient, now: datetime
) -> None:
    """The stream job rewrites an open window with a higher version; the view must not add both rows."""
    seed_page_views(writer, now, minutes=1, version=2, extra_views=1000)
    clicks = dict(reader.query_rows(MOST_CLICKED))
    assert clicks == {
        page: sum(seeded_views(minute, index) for minute in range(MINUTES)) + 1000 for index, page in enumerate(PAGES)
    }
    (rows,) = reader.query_rows(f"SELECT count() FROM {PREVIOUS_TABLE}")[0]
    assert rows == MINUTES * len(PAGES)


def test_the_view_is_read_only(writer: WarehouseClient, reader: WarehouseClient) -> None:
    with pytest.raises(QueryRejectedError):
        reader.query_rows(f"INSERT INTO {PREVIOUS_TABLE} SELECT now(), now(), '/', 1")
    # Even the writing account cannot write into it: it is a view, rtap's tables are the only store.
    with pytest.raises(WarehouseError):
        writer.command(f"INSERT INTO {PREVIOUS_TABLE} SELECT now(), now(), '/', 1")


def test_the_previous_systems_table_left_on_the_server_stops_the_migration(
    settings: Settings, writer: WarehouseClient
) -> None:
    """rtap never shadows or replaces it: the migration stops with what to do, and records nothing."""
    writer.command(f"DROP VIEW {PREVIOUS_TABLE}")
    writer.command(
        f"CREATE TABLE {PREVIOUS_TABLE} (window_start DateTime, window_end DateTime, page_url String, "
        "click_count UInt64) ENGINE = MergeTree ORDER BY (window_start, page_url)"
    )
    writer.command(f"INSERT INTO {PREVIOUS_TABLE} VALUES (now(), now(), '/old', 7)")
    other = Settings(
        data_dir=settings.data_dir,
        warehouse=WarehouseSettings(database=f"rtap_test_{uuid.uuid4().hex[:8]}"),
    )
    try:
        with create_client(other) as fresh:
            (view,) = [m for m in load_migrations() if m.name == "clickstream_aggregates"]
            with pytest.raises(WarehouseError, match=rf"migration {view.label}, statement 3: .*RENAME TABLE"):
                apply_migrations(fresh)
            recorded = {version for (version,) in fresh.query_rows("SELECT version FROM {db}.schema_migrations")}
            assert recorded == {m.version for m in load_migrations() if m.version < view.version}
        assert writer.query_rows(f"SELECT page_url, click_count FROM {PREVIOUS_TABLE}") == [("/old", 7)]
    finally:
        writer.command(f"DROP TABLE {PREVIOUS_TABLE}")
        writer.command(
            f"CREATE VIEW {PREVIOUS_TABLE} AS SELECT window_start, window_end, page_url, click_count "
            "FROM {db}.clickstream_aggregates"
        )
