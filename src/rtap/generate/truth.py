"""The ground truth of a produced stream: exactly what a correct pipeline must end up showing.

Every record is classified by the pipeline's rules (``rtap.stream.transforms``), in production order:

1. a record that breaks the contract is a **dead letter**;
2. a valid record whose event_id was already accepted is a **duplicate**, on time or at most
   ``COPY_LOOKBACK_MS`` behind the watermark (the generator's copies are byte-identical, so the job's rule of
   copies within a minute of each other is the same here);
3. per Kafka partition, any other valid record is **late** when its event_time is earlier than the highest
   event_time of the valid records before it in that partition, minus the watermark delay;
4. anything else is **accepted**: it is in ``events`` and counted in the one-minute aggregates.

The truth keeps counters and, per UTC minute, the aggregates the warehouse shows (``page_views_1m``,
``events_1m``, see :mod:`rtap.generate.minutes`) with exact distinct users and orders. It closes a minute
once every partition's watermark has passed its end, so memory follows the open minutes, not the length
of the run. It is persisted as a JSON document (:meth:`GroundTruth.to_json`), and the truths of runs
written one after the other to a topic can be merged (:meth:`GroundTruth.merge`).

Two hints keep memory bounded on long runs without changing any answer, and the generator gives them:
``id_may_recur=False`` promises that no later record carries this event_id (ids of records that will
not be re-sent need not be remembered), and :meth:`GroundTruth.end_session` promises that no later record
of the session will be accepted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypeVar

import orjson

from rtap.contract import PRICE_SCALE, validate_event
from rtap.contract.vocabulary import (
    ACCEPTED,
    COPY_LOOKBACK_MS,
    DEAD_LETTER,
    DUPLICATE,
    LATE,
    PAGE_VIEW_TYPES,
    PURCHASE,
)
from rtap.errors import ContractError, ValidationFailedError
from rtap.generate.minutes import USER_BITS, EventStats, Minutes, PageViews, TypeRow, minute_start

# PageViews and EventStats are the rows of this module's answers; they are defined with the aggregates.
__all__ = ["EventBatch", "EventStats", "GroundTruth", "PageViews", "Totals", "minute_start"]

# How often (in accepted events) to look for minutes that can be closed; closing is a scan of open minutes.
CLOSE_EVERY = 8192
FORMAT_VERSION = 1
_NO_HIGH_WATER = -(1 << 62)
_NO_ON_TIME = 1 << 62
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
T = TypeVar("T")


@dataclass(frozen=True)
class Totals:
    """How the produced records split up; ``produced`` is the sum of the other four."""

    produced: int
    accepted: int
    duplicates: int
    late: int
    dead_letters: int
    sessions: int


def _epoch_ms(moment: datetime) -> int:
    return (moment.astimezone(UTC) - _EPOCH) // timedelta(milliseconds=1)


def _units_to_decimal(units: int) -> Decimal:
    return Decimal(units).scaleb(-PRICE_SCALE)


def _decimal_to_units(value: Decimal) -> int:
    return int(value.scaleb(PRICE_SCALE).to_integral_value())


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class EventBatch:
    """Valid records in production order, one list per field: what :meth:`GroundTruth.add_events` reads.

    Pages, event types and users are given as the truth's codes (:meth:`GroundTruth.page_code`,
    :meth:`~GroundTruth.type_code`, :meth:`~GroundTruth.user_code`): a producer looks each up once per
    page or user, not once per event, and the truth counts distinct pairs of integers. ``page_codes`` is
    -1 for events that are not page views. ``ids`` and ``purchases`` are sparse, keyed by position in the
    batch. ``ids`` lists the records whose event_id may repeat one seen before, as (event_id,
    id_may_recur) (see :meth:`GroundTruth.add_event`); every record not in it promises an event_id never
    seen before and never repeated. ``purchases`` gives (order_id, revenue_units) of each purchase.
    """

    partitions: list[int] = field(default_factory=list)
    times_ms: list[int] = field(default_factory=list)
    type_codes: list[int] = field(default_factory=list)
    page_codes: list[int] = field(default_factory=list)
    user_codes: list[int] = field(default_factory=list)
    session_ids: list[str] = field(default_factory=list)
    ids: dict[int, tuple[str, bool]] = field(default_factory=dict)
    purchases: dict[int, tuple[str | None, int]] = field(default_factory=dict)


def _without(column: list[T], positions: list[int]) -> list[T]:
    """``column`` without the elements at ``positions`` (ascending): a few slices, not a pass per element."""
    kept: list[T] = []
    start = 0
    for position in positions:
        kept += column[start:position]
        start = position + 1
    kept += column[start:]
    return kept


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
        self._minutes = Minutes()
        # Codes of pages, event types and users: a code is the position in insertion order.
        self._page_codes: dict[str, int] = {}
        self._type_codes: dict[str, int] = {}
        self._user_codes: dict[str, int] = {}
        self._until_close = CLOSE_EVERY

    # -- observing records, in production order ------------------------------------------------------

    def add_dead_letter(self) -> str:
        """A record that breaks the contract."""
        self.produced += 1
        self.dead_letters += 1
        return DEAD_LETTER

    def page_code(self, page_url: str) -> int:
        """The code of ``page_url`` in :class:`EventBatch` (the same page always gets the same code)."""
        return self._page_codes.setdefault(page_url, len(self._page_codes))

    def type_code(self, event_type: str) -> int:
        """The code of ``event_type`` in :class:`EventBatch`."""
        return self._type_codes.setdefault(event_type, len(self._type_codes))

    def user_code(self, user_id: str) -> int:
        """The code of ``user_id`` in :class:`EventBatch`."""
        code = self._user_codes.setdefault(user_id, len(self._user_codes))
        if code >= 1 << USER_BITS:
            raise ValueError(f"more than {1 << USER_BITS} distinct users")
        return code

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
        late, duplicates = self.late, self.duplicates
        self.add_events(
            EventBatch(
                partitions=[partition],
                times_ms=[time_ms],
                type_codes=[self.type_code(event_type)],
                page_codes=[self.page_code(page_url) if event_type in PAGE_VIEW_TYPES else -1],
                user_codes=[self.user_code(user_id)],
                session_ids=[session_id],
                ids={0: (event_id, id_may_recur)},
                purchases={0: (order_id, revenue_units)} if event_type == PURCHASE else {},
            )
        )
        return LATE if self.late != late else DUPLICATE if self.duplicates != duplicates else ACCEPTED

    def add_events(self, batch: EventBatch) -> None:
        """Valid records in production order: the bulk form of :meth:`add_event`, one pass per batch.

        Lateness needs a pass in order over (partition, time); the rest is counting over numpy arrays
        of the accepted records, so a batch of a thousand costs a small fraction of a thousand
        :meth:`add_event` calls.
        """
        times = batch.times_ms
        count = len(times)
        self.produced += count
        high, first, delay = self._high_water, self._first_on_time, self.watermark_delay_ms
        late: list[int] = []
        stale: set[int] = set()  # too far behind to be judged a copy
        for index, (partition, time_ms) in enumerate(zip(batch.partitions, times, strict=True)):
            mark = high[partition]
            if time_ms > mark:
                high[partition] = time_ms
            elif time_ms < mark - delay:
                late.append(index)
                if time_ms < mark - delay - COPY_LOOKBACK_MS:
                    stale.add(index)
                continue
            if time_ms < first[partition]:
                first[partition] = time_ms
        rejected = late
        if batch.ids:
            duplicates = self._duplicates(batch.ids, set(late), stale)
            if duplicates:
                self.duplicates += len(duplicates)
                late = sorted(set(late) - set(duplicates))
                rejected = sorted(late + duplicates)
        self.late += len(late)
        accepted = count - len(rejected)
        if not accepted:
            return
        self.accepted += accepted
        columns: tuple[list[int], ...] = (times, batch.type_codes, batch.page_codes, batch.user_codes)
        session_ids = batch.session_ids
        if rejected:
            columns = tuple(_without(column, rejected) for column in columns)
            session_ids = _without(session_ids, rejected)
        self._open_sessions.update(session_ids)
        self._minutes.add(*columns)
        if batch.purchases:
            skipped = set(rejected)
            for index, (order_id, revenue_units) in batch.purchases.items():
                if index not in skipped:
                    self._minutes.add_purchase(times[index], order_id, revenue_units)
        self._until_close -= accepted
        if self._until_close <= 0:
            self._until_close = CLOSE_EVERY
            self._close_minutes()

    def _duplicates(self, ids: dict[int, tuple[str, bool]], late: set[int], stale: set[int]) -> list[int]:
        """Positions of records whose event_id was accepted before, ``late`` ones (behind the watermark) included
        unless ``stale`` (further behind than the job looks for copies); maintains the remembered ids, which only
        an accepted record adds.

        Only the records in ``ids`` can repeat an id (the batch's promise), so only they are looked up,
        in production order.
        """
        remembered = self._ids
        found = []
        for index in sorted(ids):
            event_id, may_recur = ids[index]
            if event_id in remembered and index not in stale:
                found.append(index)
                if not may_recur:
                    remembered.discard(event_id)
            elif may_recur and index not in late:
                remembered.add(event_id)
        return found

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

    def end_sessions(self, session_ids: Iterable[str]) -> None:
        """:meth:`end_session` of each of ``session_ids``."""
        for session_id in session_ids:
            self.end_session(session_id)

    def _close_minutes(self) -> None:
        """Close the minutes that every partition's watermark has passed: no event of them can be accepted."""
        safe = min(self._high_water) - self.watermark_delay_ms
        self._minutes.close(safe, list(self._page_codes), list(self._type_codes))

    # -- what the warehouse must show -----------------------------------------------------------------

    @property
    def sessions(self) -> int:
        """Distinct session_ids among the accepted events."""
        return self._closed_sessions + len(self._open_sessions)

    def totals(self) -> Totals:
        return Totals(self.produced, self.accepted, self.duplicates, self.late, self.dead_letters, self.sessions)

    def _page_rows(self) -> dict[tuple[int, str], PageViews]:
        return self._minutes.page_rows(list(self._page_codes))

    def _type_rows(self) -> dict[tuple[int, str], TypeRow]:
        return self._minutes.type_rows(list(self._type_codes))

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
                truth._minutes.closed_pages[_parse_minute(minute), page] = PageViews(views, users)
            for minute, event_type, events, users, orders, revenue in document["events_1m"]:
                truth._minutes.closed_types[_parse_minute(minute), event_type] = (
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
        merged._minutes.closed_pages = {**self._page_rows(), **later._page_rows()}
        merged._minutes.closed_types = {**types, **later_types}
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
