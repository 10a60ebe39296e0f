"""The one-minute aggregates of the accepted events, exactly as the warehouse must show them.

Per UTC minute: views and unique users per page (``page_views_1m``), and events, users, orders and
revenue per event type (``events_1m``). Distinct users and orders need sets while a minute can still
change; the ground truth closes a minute (sets replaced by their sizes) once every partition's watermark
has passed its end, because from then on any event of that minute is late. So memory follows the open
minutes, not the length of the run.

The accepted events arrive a block at a time and are counted with numpy, :data:`COUNT_EVERY` at a time:
counts by code with ``bincount``, distinct (page or type, user) pairs as int64s sorted and deduplicated
now and then. Pages, event types and users are the truth's integer codes here; the rows name them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from rtap.contract.vocabulary import PURCHASE

MINUTE_MS = 60_000
# Distinct pairs are packed as label code << USER_BITS | user code in an int64.
USER_BITS = 32
# Unsorted pairs kept before they are deduplicated (at least; more once the unique ones outnumber them).
COMPACT_PAIRS = 1 << 18
# Accepted records are counted into their minutes (with numpy) this many at a time.
COUNT_EVERY = 4096
_Codes = npt.NDArray[np.int64]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A row of events_1m in integers: events, users, orders, revenue in 10^-PRICE_SCALE units.
TypeRow = tuple[int, int, int, int]


class PageViews(NamedTuple):
    """One row of ``page_views_1m``: page_view + product_view events of a page in a minute."""

    views: int
    unique_users: int


class EventStats(NamedTuple):
    """One row of ``events_1m``; orders and revenue come from purchases only (0 for other types)."""

    events: int
    users: int
    orders: int
    revenue: Decimal


def minute_start(ms: int) -> datetime:
    """The UTC start of the minute containing epoch millisecond ``ms``."""
    return _EPOCH + timedelta(milliseconds=ms - ms % MINUTE_MS)


class _DistinctPairs:
    """Distinct (label code, user code) pairs, packed in int64s: sorted and deduplicated now and then.

    A batch is appended as one array; pairs are made unique when the unsorted tail outgrows the unique
    part, so memory follows the distinct pairs and each pair is sorted a bounded number of times.
    """

    __slots__ = ("_chunks", "_pending", "_unique")

    def __init__(self) -> None:
        self._unique = np.empty(0, dtype=np.int64)
        self._chunks: list[_Codes] = []
        self._pending = 0

    def add(self, labels: _Codes, users: _Codes) -> None:
        self._chunks.append((labels << USER_BITS) | users)
        self._pending += len(labels)
        if self._pending > max(COMPACT_PAIRS, len(self._unique)):
            self._compact()

    def _compact(self) -> None:
        pairs = np.sort(np.concatenate([self._unique, *self._chunks]))
        # np.sort and a neighbour comparison: much faster than np.unique on int64 here.
        self._unique = pairs[np.concatenate(([True], pairs[1:] != pairs[:-1]))] if len(pairs) else pairs
        self._chunks = []
        self._pending = 0

    def users_per_label(self) -> dict[int, int]:
        """label code -> number of distinct users."""
        self._compact()
        labels, users = np.unique(self._unique >> USER_BITS, return_counts=True)
        return dict(zip(labels.tolist(), users.tolist(), strict=True))


def _add_counts(total: _Codes, codes: _Codes) -> _Codes:
    """``total`` (counts by code) plus the occurrences of each code in ``codes``, grown as needed."""
    counts = np.bincount(codes)
    if len(counts) > len(total):
        counts[: len(total)] += total
        return counts
    total[: len(counts)] += counts
    return total


class _OpenMinute:
    """The accepted events of one minute that can still grow: counts by code, and distinct user pairs."""

    __slots__ = ("events", "orders", "revenue", "typed_users", "viewed_users", "views")

    def __init__(self) -> None:
        self.views = np.zeros(0, dtype=np.int64)  # by page code
        self.viewed_users = _DistinctPairs()
        self.events = np.zeros(0, dtype=np.int64)  # by event type code
        self.typed_users = _DistinctPairs()
        self.orders: set[str] = set()
        self.revenue = 0

    def add(self, type_codes: _Codes, page_codes: _Codes, users: _Codes) -> None:
        self.events = _add_counts(self.events, type_codes)
        self.typed_users.add(type_codes, users)
        viewed = page_codes >= 0
        if not viewed.all():
            page_codes, users = page_codes[viewed], users[viewed]
        if len(page_codes):
            self.views = _add_counts(self.views, page_codes)
            self.viewed_users.add(page_codes, users)

    def add_purchase(self, order_id: str | None, revenue_units: int) -> None:
        if order_id is not None:
            self.orders.add(order_id)
        self.revenue += revenue_units

    def page_rows(self, pages: list[str]) -> dict[str, PageViews]:
        viewers = self.viewed_users.users_per_label()
        return {pages[code]: PageViews(views, viewers[code]) for code, views in enumerate(self.views.tolist()) if views}

    def type_rows(self, types: list[str]) -> dict[str, TypeRow]:
        users = self.typed_users.users_per_label()
        rows = {types[code]: (events, users[code], 0, 0) for code, events in enumerate(self.events.tolist()) if events}
        if PURCHASE in rows:  # orders and revenue come from purchases only
            rows[PURCHASE] = (rows[PURCHASE][0], rows[PURCHASE][1], len(self.orders), self.revenue)
        return rows


class Minutes:
    """Every minute's aggregates: open minutes, and the rows of closed ones (keyed by minute in epoch ms).

    ``closed_pages`` and ``closed_types`` are the rows of the closed minutes; a truth read from JSON or made
    by merging has only those.
    """

    def __init__(self) -> None:
        self._open: dict[int, _OpenMinute] = {}
        # Accepted records not yet counted into their minutes: time, type, page and user codes.
        self._pending: tuple[list[int], list[int], list[int], list[int]] = ([], [], [], [])
        self.closed_pages: dict[tuple[int, str], PageViews] = {}
        self.closed_types: dict[tuple[int, str], TypeRow] = {}

    def add(self, times_ms: list[int], type_codes: list[int], page_codes: list[int], user_codes: list[int]) -> None:
        """Accepted records, one list per field (page code -1: not a page view)."""
        for pending, column in zip(self._pending, (times_ms, type_codes, page_codes, user_codes), strict=True):
            pending += column
        if len(self._pending[0]) >= COUNT_EVERY:
            self._count_pending()

    def add_purchase(self, time_ms: int, order_id: str | None, revenue_units: int) -> None:
        """An accepted purchase's order and revenue (its event is counted by :meth:`add`)."""
        self._minute(time_ms - time_ms % MINUTE_MS).add_purchase(order_id, revenue_units)

    def close(self, until_ms: int, pages: list[str], types: list[str]) -> None:
        """Replace the sets of the minutes that end at or before ``until_ms`` by their sizes.

        ``pages`` and ``types`` name the codes (a code is the position in the list).
        """
        self._count_pending()
        for minute in [m for m in self._open if m + MINUTE_MS <= until_ms]:
            open_minute = self._open.pop(minute)
            for page_url, row in open_minute.page_rows(pages).items():
                self.closed_pages[minute, page_url] = row
            for event_type, stats in open_minute.type_rows(types).items():
                self.closed_types[minute, event_type] = stats

    def page_rows(self, pages: list[str]) -> dict[tuple[int, str], PageViews]:
        """(minute, page_url) -> the row of ``page_views_1m``, open minutes and closed."""
        self._count_pending()
        rows = dict(self.closed_pages)
        for minute, open_minute in self._open.items():
            for page_url, row in open_minute.page_rows(pages).items():
                rows[minute, page_url] = row
        return rows

    def type_rows(self, types: list[str]) -> dict[tuple[int, str], TypeRow]:
        """(minute, event_type) -> the row of ``events_1m`` in integers, open minutes and closed."""
        self._count_pending()
        rows = dict(self.closed_types)
        for minute, open_minute in self._open.items():
            for event_type, stats in open_minute.type_rows(types).items():
                rows[minute, event_type] = stats
        return rows

    def _count_pending(self) -> None:
        """Add the accepted records not yet counted to their minutes (numpy, so worth it in bulk)."""
        if not self._pending[0]:
            return
        times, type_codes, page_codes, user_codes = (np.array(column, dtype=np.int64) for column in self._pending)
        self._pending = ([], [], [], [])
        minutes = times - times % MINUTE_MS
        first_minute = int(minutes[0])
        if (minutes == first_minute).all():
            self._minute(first_minute).add(type_codes, page_codes, user_codes)
            return
        for minute in np.unique(minutes).tolist():  # the records span a minute boundary
            chosen = minutes == minute
            self._minute(minute).add(type_codes[chosen], page_codes[chosen], user_codes[chosen])

    def _minute(self, minute: int) -> _OpenMinute:
        open_minute = self._open.get(minute)
        if open_minute is None:
            open_minute = self._open[minute] = _OpenMinute()
        return open_minute
