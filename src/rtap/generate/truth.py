"""The ground truth of a produced stream: exactly what a correct pipeline must end up showing.

Every record is classified by the pipeline's rules (``rtap.stream.transforms``), in production order:

1. a record that breaks the contract is a **dead letter**;
2. per Kafka partition, a valid record is **late** when its event_time is earlier than the highest
   event_time of the valid records before it in that partition, minus the watermark delay;
3. a valid, on-time record whose event_id was already accepted is a **duplicate**;
4. anything else is **accepted**: it is in ``events`` and counted in the one-minute aggregates.

The truth keeps counters and, per UTC minute, the aggregates the warehouse shows (``page_views_1m``,
``events_1m``) with exact distinct users and orders. Distinct values need sets while a minute can still
change; a minute is *closed* (sets replaced by their sizes) once every partition's watermark has passed
its end, because from then on any event of that minute is late. So memory follows the open minutes,
not the length of the run.

Two hints keep memory bounded on long runs without changing any answer, and the generator gives them:
``id_may_recur=False`` promises that no later record carries this event_id (ids of records that will
not be re-sent need not be remembered), and :meth:`GroundTruth.end_session` promises that no later record
of the session will be accepted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

import orjson

from rtap.contract import PRICE_SCALE, validate_event
from rtap.errors import ContractError, ValidationFailedError

DEAD_LETTER = "dead_letter"
LATE = "late"
DUPLICATE = "duplicate"
ACCEPTED = "accepted"

PAGE_VIEW_TYPES = frozenset({"page_view", "product_view"})
PURCHASE = "purchase"
MINUTE_MS = 60_000
# Money in integer units of 10^-PRICE_SCALE: the warehouse sums Decimal(38, PRICE_SCALE), so integer
# units at the same scale reproduce its sums exactly, in any order.
MONEY_UNITS = 10**PRICE_SCALE
# How often (in accepted events) to look for minutes that can be closed; closing is a scan of open minutes.
CLOSE_EVERY = 8192
FORMAT_VERSION = 1
_NO_HIGH_WATER = -(1 << 62)
_NO_ON_TIME = 1 << 62
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


@dataclass(frozen=True)
class Totals:
    """How the produced records split up; ``produced`` is the sum of the other four."""

    produced: int
    accepted: int
    duplicates: int
    late: int
    dead_letters: int
    sessions: int


def minute_start(ms: int) -> datetime:
    """The UTC start of the minute containing epoch millisecond ``ms``."""
    return _EPOCH + timedelta(milliseconds=ms - ms % MINUTE_MS)


def _epoch_ms(moment: datetime) -> int:
    return (moment.astimezone(UTC) - _EPOCH) // timedelta(milliseconds=1)


def _units_to_decimal(units: int) -> Decimal:
    return Decimal(units).scaleb(-PRICE_SCALE)


def _decimal_to_units(value: Decimal) -> int:
    return int(value.scaleb(PRICE_SCALE).to_integral_value())


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class GroundTruth:
    """Counts and per-minute aggregates of one stream (one run, or several merged in production order)."""

    def __init__(self, *, partitions: int, watermark_delay_s: float) -> None:
        if partitions < 1:
            raise ValueError(f"partitions must be >= 1, got {partitions}")
        self.partitions = partitions
        # The stream job works in whole milliseconds too: INTERVAL int(delay * 1000) MILLISECONDS.
        self.watermark_delay_ms = int(watermark_delay_s * 1000)
        self.produced = 0
        self.accepted = 0
        self.duplicates = 0
        self.late = 0
        self.dead_letters = 0
        self.runs = 1
        self._high_water = [_NO_HIGH_WATER] * partitions
        # The earliest on-time (accepted or duplicate) event_time per partition: what merging checks.
        self._first_on_time = [_NO_ON_TIME] * partitions
        self._ids: set[str] = set()
        self._open_sessions: set[str] = set()
        self._closed_sessions = 0
        # minute (epoch ms) -> page_url -> [views, users]; users is a set while the minute is open.
        self._open_pages: dict[int, dict[str, list[Any]]] = {}
        # minute -> event_type -> [events, users, orders, revenue_units]
        self._open_types: dict[int, dict[str, list[Any]]] = {}
        self._pages: dict[tuple[int, str], PageViews] = {}
        self._types: dict[tuple[int, str], tuple[int, int, int, int]] = {}
        self._until_close = CLOSE_EVERY

    # -- observing records, in production order ------------------------------------------------------

    def add_dead_letter(self) -> str:
        """A record that breaks the contract."""
        self.produced += 1
        self.dead_letters += 1
        return DEAD_LETTER

    def add_event(
        self,
        partition: int,
        time_ms: int,
        event_id: str,
        event_type: str,
        user_id: str,
        session_id: str,
        page_url: str,
        order_id: str | None,
        revenue_units: int,
        id_may_recur: bool = True,
    ) -> str:
        """A valid record; returns its status. ``revenue_units`` = price * quantity in 10^-6 (0 if none)."""
        self.produced += 1
        high = self._high_water[partition]
        if time_ms < high - self.watermark_delay_ms:
            self.late += 1
            return LATE
        if time_ms > high:
            self._high_water[partition] = time_ms
        if time_ms < self._first_on_time[partition]:
            self._first_on_time[partition] = time_ms
        ids = self._ids
        if event_id in ids:
            self.duplicates += 1
            if not id_may_recur:
                ids.discard(event_id)
            return DUPLICATE
        if id_may_recur:
            ids.add(event_id)
        self.accepted += 1
        self._open_sessions.add(session_id)
        minute = time_ms - time_ms % MINUTE_MS
        if event_type in PAGE_VIEW_TYPES:
            pages = self._open_pages.get(minute)
            if pages is None:
                pages = self._open_pages[minute] = {}
            page = pages.get(page_url)
            if page is None:
                pages[page_url] = [1, {user_id}]
            else:
                page[0] += 1
                page[1].add(user_id)
        types = self._open_types.get(minute)
        if types is None:
            types = self._open_types[minute] = {}
        stats = types.get(event_type)
        if stats is None:
            stats = types[event_type] = [0, set(), set(), 0]
        stats[0] += 1
        stats[1].add(user_id)
        if event_type == PURCHASE:
            if order_id is not None:
                stats[2].add(order_id)
            stats[3] += revenue_units
        self._until_close -= 1
        if not self._until_close:
            self._until_close = CLOSE_EVERY
            self._close_minutes()
        return ACCEPTED

    def add_record(self, partition: int, value: bytes) -> str:
        """Classify one raw record by validating it against the contract: the slow, general path."""
        try:
            event = validate_event(value)
        except ContractError:
            return self.add_dead_letter()
        revenue = 0
        if event["event_type"] == PURCHASE:
            revenue = _decimal_to_units((event["price"] or Decimal(0)) * (event["quantity"] or 0))
        return self.add_event(
            partition,
            _epoch_ms(event["event_time"]),
            event["event_id"],
            event["event_type"],
            event["user_id"],
            event["session_id"],
            event["page_url"],
            event["order_id"],
            revenue,
        )

    def end_session(self, session_id: str) -> None:
        """Promise that no later record of ``session_id`` will be accepted, so it need not be remembered."""
        if session_id in self._open_sessions:
            self._open_sessions.discard(session_id)
            self._closed_sessions += 1

    def _close_minutes(self) -> None:
        """Replace the sets of minutes that every partition's watermark has passed by their sizes."""
        safe = min(self._high_water) - self.watermark_delay_ms
        for minute in [m for m in self._open_pages if m + MINUTE_MS <= safe]:
            for page_url, (views, users) in self._open_pages.pop(minute).items():
                self._pages[minute, page_url] = PageViews(views, len(users))
        for minute in [m for m in self._open_types if m + MINUTE_MS <= safe]:
            for event_type, (events, users, orders, revenue) in self._open_types.pop(minute).items():
                self._types[minute, event_type] = (events, len(users), len(orders), revenue)

    # -- what the warehouse must show -----------------------------------------------------------------

    @property
    def sessions(self) -> int:
        """Distinct session_ids among the accepted events."""
        return self._closed_sessions + len(self._open_sessions)

    def totals(self) -> Totals:
        return Totals(self.produced, self.accepted, self.duplicates, self.late, self.dead_letters, self.sessions)

    def _page_rows(self) -> dict[tuple[int, str], PageViews]:
        rows = dict(self._pages)
        for minute, pages in self._open_pages.items():
            for page_url, (views, users) in pages.items():
                rows[minute, page_url] = PageViews(views, len(users))
        return rows

    def _type_rows(self) -> dict[tuple[int, str], tuple[int, int, int, int]]:
        rows = dict(self._types)
        for minute, types in self._open_types.items():
            for event_type, (events, users, orders, revenue) in types.items():
                rows[minute, event_type] = (events, len(users), len(orders), revenue)
        return rows

    def page_views_1m(self) -> dict[tuple[datetime, str], PageViews]:
        """(window_start, page_url) -> views and exact unique users, as ``page_views_1m FINAL`` must show."""
        return {(minute_start(m), page): row for (m, page), row in sorted(self._page_rows().items())}

    def events_1m(self) -> dict[tuple[datetime, str], EventStats]:
        """(window_start, event_type) -> events, users, orders, revenue, as ``events_1m FINAL`` must show."""
        return {
            (minute_start(m), event_type): EventStats(events, users, orders, _units_to_decimal(revenue))
            for (m, event_type), (events, users, orders, revenue) in sorted(self._type_rows().items())
        }

    # -- persistence and merging ----------------------------------------------------------------------

    def to_json(self) -> bytes:
        """A compact, deterministic JSON document (distinct values as counts, money as exact strings)."""
        document = {
            "format": FORMAT_VERSION,
            "partitions": self.partitions,
            "watermark_delay_ms": self.watermark_delay_ms,
            "runs": self.runs,
            "produced": self.produced,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "late": self.late,
            "dead_letters": self.dead_letters,
            "sessions": self.sessions,
            "partition_high_water_ms": [None if v == _NO_HIGH_WATER else v for v in self._high_water],
            "partition_first_on_time_ms": [None if v == _NO_ON_TIME else v for v in self._first_on_time],
            "page_views_1m": [
                [_iso(minute_start(m)), page, row.views, row.unique_users]
                for (m, page), row in sorted(self._page_rows().items())
            ],
            "events_1m": [
                [_iso(minute_start(m)), event_type, events, users, orders, str(_units_to_decimal(revenue))]
                for (m, event_type), (events, users, orders, revenue) in sorted(self._type_rows().items())
            ],
        }
        return orjson.dumps(document, option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, data: bytes) -> GroundTruth:
        """Read what :meth:`to_json` wrote; raises :class:`ValidationFailedError` on anything else."""
        try:
            document = orjson.loads(data)
            if document.get("format") != FORMAT_VERSION:
                raise ValidationFailedError(f"unsupported ground truth format {document.get('format')!r}")
            truth = cls(partitions=document["partitions"], watermark_delay_s=document["watermark_delay_ms"] / 1000)
            truth.watermark_delay_ms = document["watermark_delay_ms"]
            truth.runs = document["runs"]
            for name in ("produced", "accepted", "duplicates", "late", "dead_letters"):
                setattr(truth, name, int(document[name]))
            truth._closed_sessions = int(document["sessions"])
            truth._high_water = [_NO_HIGH_WATER if v is None else v for v in document["partition_high_water_ms"]]
            truth._first_on_time = [_NO_ON_TIME if v is None else v for v in document["partition_first_on_time_ms"]]
            for minute, page, views, users in document["page_views_1m"]:
                truth._pages[_parse_minute(minute), page] = PageViews(views, users)
            for minute, event_type, events, users, orders, revenue in document["events_1m"]:
                truth._types[_parse_minute(minute), event_type] = (
                    events,
                    users,
                    orders,
                    _decimal_to_units(Decimal(revenue)),
                )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValidationFailedError(f"not a ground truth document: {exc}") from exc
        return truth

    def merge(self, later: GroundTruth) -> GroundTruth:
        """The truth of this stream followed by ``later`` in the same topic (runs in production order).

        Exact only when the runs do not interact, and this refuses (ValidationFailedError) when they
        might: unique users of a minute seen by both runs cannot be added up, and a record of ``later``
        that was on time on its own but is behind this run's watermark would be late in the topic.
        Event ids never collide between runs (each run draws its ids from the seed and its start time).
        """
        if (later.partitions, later.watermark_delay_ms) != (self.partitions, self.watermark_delay_ms):
            raise ValidationFailedError(
                "cannot merge truths of different topics or delays: "
                f"{self.partitions} vs {later.partitions} partitions, "
                f"{self.watermark_delay_ms} vs {later.watermark_delay_ms} ms watermark delay"
            )
        for partition, (high, first) in enumerate(zip(self._high_water, later._first_on_time, strict=True)):
            if first < high - self.watermark_delay_ms:
                raise ValidationFailedError(
                    f"cannot merge: partition {partition} of the later run starts at "
                    f"{minute_start(first):%Y-%m-%d %H:%M} UTC, behind the earlier run's watermark"
                )
        types, later_types = self._type_rows(), later._type_rows()
        # Every accepted event has an events_1m row, so shared minutes of page views are among these.
        shared = sorted({m for m, _ in types} & {m for m, _ in later_types})
        if shared:
            raise ValidationFailedError(
                f"cannot merge exactly: both runs have events in minute {_iso(minute_start(shared[0]))} "
                "(distinct users cannot be added up); produce runs in separate minutes or topics"
            )
        merged = GroundTruth(partitions=self.partitions, watermark_delay_s=0)
        merged.watermark_delay_ms = self.watermark_delay_ms
        merged.runs = self.runs + later.runs
        for name in ("produced", "accepted", "duplicates", "late", "dead_letters"):
            setattr(merged, name, getattr(self, name) + getattr(later, name))
        merged._closed_sessions = self.sessions + later.sessions
        merged._high_water = [max(a, b) for a, b in zip(self._high_water, later._high_water, strict=True)]
        merged._first_on_time = [min(a, b) for a, b in zip(self._first_on_time, later._first_on_time, strict=True)]
        merged._pages = {**self._page_rows(), **later._page_rows()}
        merged._types = {**types, **later_types}
        return merged

    @classmethod
    def merge_all(cls, truths: Iterable[GroundTruth]) -> GroundTruth:
        """Merge truths given in production order (see :meth:`merge`)."""
        iterator = iter(truths)
        try:
            merged = next(iterator)
        except StopIteration:
            raise ValueError("merge_all needs at least one truth") from None
        for truth in iterator:
            merged = merged.merge(truth)
        return merged


def _parse_minute(text: str) -> int:
    return _epoch_ms(datetime.fromisoformat(text))
