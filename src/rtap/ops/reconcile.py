"""Reconcile the warehouse with the generator's ground truth: every count and every window row, exactly.

:func:`reconcile` is a pure comparison (tested without a warehouse); :func:`observe` is the small query
part that reads what readers see (``FINAL`` on the ReplacingMergeTree tables). The checks:

- ``events``, ``dead_letters``, ``late_events``: row counts vs the truth's accepted, dead-letter and
  late records; ``duplicates``: the sum over committed micro-batches (``pipeline_batches``);
- ``accounted``: the four together vs the records produced (nothing silently dropped);
- ``lost_by_retention``: records Kafka deleted before the job read them, skipped only when the operator
  accepted it (``rtap stream --accept-data-loss``) and recorded in ``data_gaps``: every range is listed,
  and a non-zero count fails the report. They are in no table, so when the truth covers them the other
  counts differ by them, which the ``accounted`` line says;
- ``sessions``: distinct session ids;
- ``page_views_1m`` and ``events_1m``: every row, both ways (missing, unexpected and different rows).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from rtap.errors import ConfigError
from rtap.generate.truth import EventStats, GroundTruth, PageViews

if TYPE_CHECKING:
    from rtap.warehouse import WarehouseClient

DEFAULT_MAX_DIFFERENCES = 10

# Only what was read from the truth's topic counts: the job reads other topics beside it (the collector's
# browser events, a previous system's topic), whose events share the tables. Rows written before topics were
# recorded have kafka_topic '' (the contract-v1 topic, the only one there was), and batches before migration
# 0011 only a total of duplicates.
_MINE = "kafka_topic IN ('', {topic:String})"
COUNT_EVENTS = f"SELECT count() FROM {{db}}.events FINAL WHERE {_MINE}"
COUNT_LATE = f"SELECT count() FROM {{db}}.late_events FINAL WHERE {_MINE}"
COUNT_DEAD_LETTERS = "SELECT count() FROM {db}.dead_letters FINAL WHERE topic = {topic:String}"
SUM_DUPLICATES = """
SELECT toUInt64(sum(if(empty(topic_duplicates), duplicates, topic_duplicates[{topic:String}])))
FROM {db}.pipeline_batches FINAL
"""
DATA_GAPS = """
SELECT `partition`, first_offset, end_offset, records FROM {db}.data_gaps FINAL
WHERE topic = {topic:String} ORDER BY `partition`, first_offset
"""
COUNT_SESSIONS = f"""
SELECT uniqExact(session_id) FROM {{db}}.sessions
WHERE session_id NOT IN (SELECT session_id FROM {{db}}.events WHERE NOT {_MINE})
"""
# Windows as epoch seconds and money as text: the same Python values from every backend, exactly.
PAGE_VIEWS = "SELECT toUnixTimestamp(window_start), page_url, views, unique_users FROM {db}.page_views_1m FINAL"
EVENTS_1M = (
    "SELECT toUnixTimestamp(window_start), event_type, events, users, orders, toString(revenue) "
    "FROM {db}.events_1m FINAL"
)
# What other topics' events add to the windows they fall in, from the events themselves: counts and sums add up,
# and a distinct count grows by the distinct values the truth's topic lacks (all of them less its own).
_VIEWS = "event_type IN ('page_view', 'product_view')"
_ORDER = "event_type = 'purchase' AND order_id IS NOT NULL"
OTHER_PAGE_VIEWS = f"""
SELECT toUnixTimestamp(toStartOfMinute(event_time)) AS window, page_url, countIf(NOT {_MINE}),
       uniqExact(user_id) - uniqExactIf(user_id, {_MINE})
FROM {{db}}.events FINAL
WHERE {_VIEWS} AND (toStartOfMinute(event_time), page_url) IN (
    SELECT toStartOfMinute(event_time), page_url FROM {{db}}.events WHERE {_VIEWS} AND NOT {_MINE})
GROUP BY window, page_url
"""
OTHER_EVENTS_1M = f"""
SELECT toUnixTimestamp(toStartOfMinute(event_time)) AS window, event_type, countIf(NOT {_MINE}),
       uniqExact(user_id) - uniqExactIf(user_id, {_MINE}),
       uniqExactIf(ifNull(order_id, ''), {_ORDER}) - uniqExactIf(ifNull(order_id, ''), {_ORDER} AND {_MINE}),
       toString(sumIf(toDecimal128(ifNull(price, 0), 6) * ifNull(quantity, 0), event_type = 'purchase' AND NOT {_MINE}))
FROM {{db}}.events FINAL
WHERE (toStartOfMinute(event_time), event_type) IN (
    SELECT toStartOfMinute(event_time), event_type FROM {{db}}.events WHERE NOT {_MINE})
GROUP BY window, event_type
"""


class LostRange(NamedTuple):
    """Offsets ``[first_offset, end_offset)`` of one partition, deleted by retention before they were read."""

    partition: int
    first_offset: int
    end_offset: int
    records: int


@dataclass(frozen=True)
class Observed:
    """What the warehouse shows its readers."""

    events: int
    dead_letters: int
    late_events: int
    duplicates: int
    sessions: int
    page_views_1m: Mapping[tuple[datetime, str], PageViews] = field(default_factory=dict)
    events_1m: Mapping[tuple[datetime, str], EventStats] = field(default_factory=dict)
    lost_by_retention: tuple[LostRange, ...] = ()

    @property
    def lost(self) -> int:
        return sum(gap.records for gap in self.lost_by_retention)


class Check(NamedTuple):
    """One line of the report; ``differences`` lists the first few, ``total_differences`` counts all."""

    name: str
    expected: str
    observed: str
    differences: tuple[str, ...] = ()
    total_differences: int = 0

    @property
    def ok(self) -> bool:
        return self.total_differences == 0


@dataclass(frozen=True)
class Report:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]


def _count(name: str, expected: int, observed: int) -> Check:
    differences = () if expected == observed else (f"off by {observed - expected:+d}",)
    return Check(name, str(expected), str(observed), differences, len(differences))


def _accounted(expected: int, observed: int, lost: int) -> Check:
    check = _count("accounted", expected, observed)
    if check.ok or not lost:
        return check
    return check._replace(differences=(*check.differences, f"{lost} records lost by retention (lost_by_retention)"))


def _lost(ranges: Sequence[LostRange], limit: int) -> Check:
    listed = tuple(
        f"partition {r.partition} offsets {r.first_offset}..{r.end_offset - 1}: {r.records} records" for r in ranges
    )
    return Check("lost_by_retention", "0", str(sum(r.records for r in ranges)), listed[:limit], len(listed))


def _key(key: tuple[datetime, str]) -> str:
    return f"{key[0]:%Y-%m-%d %H:%M} {key[1]}"


def _describe(row: Any) -> str:
    return ", ".join(f"{name}={value}" for name, value in zip(row._fields, row, strict=True))


def _rows(
    name: str,
    expected: Mapping[tuple[datetime, str], PageViews] | Mapping[tuple[datetime, str], EventStats],
    observed: Mapping[tuple[datetime, str], PageViews] | Mapping[tuple[datetime, str], EventStats],
    limit: int,
) -> Check:
    """Compare two tables row by row, both ways: missing, unexpected and different rows."""
    differences: list[str] = []
    for key in sorted(expected.keys() | observed.keys()):
        want, got = expected.get(key), observed.get(key)
        if want == got:
            continue
        if got is None:
            differences.append(f"{_key(key)}: missing (expected {_describe(want)})")
        elif want is None:
            differences.append(f"{_key(key)}: unexpected row ({_describe(got)})")
        else:
            changed = [f"{n} expected {a} got {b}" for n, a, b in zip(want._fields, want, got, strict=True) if a != b]
            differences.append(f"{_key(key)}: " + ", ".join(changed))
    return Check(name, f"{len(expected)} rows", f"{len(observed)} rows", tuple(differences[:limit]), len(differences))


def reconcile(truth: GroundTruth, observed: Observed, *, max_differences: int = DEFAULT_MAX_DIFFERENCES) -> Report:
    """Compare the warehouse with the truth; the report is ok only when every number is exact."""
    accounted = observed.events + observed.dead_letters + observed.late_events + observed.duplicates
    return Report(
        (
            _count("events", truth.accepted, observed.events),
            _count("dead_letters", truth.dead_letters, observed.dead_letters),
            _count("late_events", truth.late, observed.late_events),
            _count("duplicates", truth.duplicates, observed.duplicates),
            _accounted(truth.produced, accounted, observed.lost),
            _count("sessions", truth.sessions, observed.sessions),
            _rows("page_views_1m", truth.page_views_1m(), observed.page_views_1m, max_differences),
            _rows("events_1m", truth.events_1m(), observed.events_1m, max_differences),
            _lost(observed.lost_by_retention, max_differences),
        )
    )


def _utc(epoch_seconds: int) -> datetime:
    return datetime.fromtimestamp(int(epoch_seconds), UTC)


def _scalar(client: WarehouseClient, sql: str, parameters: Mapping[str, Any] | None = None) -> int:
    rows = client.query_rows(sql, parameters=parameters)
    value = rows[0][0] if rows else 0
    return int(value or 0)


def observe(client: WarehouseClient, *, topic: str) -> Observed:
    """Read what readers of the warehouse see of the input ``topic``: its records' rows, and the windows less
    what events of other topics added to them (a window only they fill is left out)."""
    mine = {"topic": topic}
    views = {
        (_utc(window), page): PageViews(int(views), int(users))
        for window, page, views, users in client.query_rows(PAGE_VIEWS)
    }
    for window, page, added_views, added_users in client.query_rows(OTHER_PAGE_VIEWS, parameters=mine):
        key = (_utc(window), page)
        if key in views:
            views[key] = PageViews(views[key].views - int(added_views), views[key].unique_users - int(added_users))
            if not views[key].views:
                del views[key]
    stats = {
        (_utc(window), event_type): EventStats(int(events), int(users), int(orders), Decimal(revenue))
        for window, event_type, events, users, orders, revenue in client.query_rows(EVENTS_1M)
    }
    for window, event_type, *added in client.query_rows(OTHER_EVENTS_1M, parameters=mine):
        key = (_utc(window), event_type)
        if key in stats:
            events, users, orders, revenue = stats[key]
            stats[key] = EventStats(
                events - int(added[0]), users - int(added[1]), orders - int(added[2]), revenue - Decimal(added[3])
            )
            if not stats[key].events:
                del stats[key]
    return Observed(
        events=_scalar(client, COUNT_EVENTS, mine),
        dead_letters=_scalar(client, COUNT_DEAD_LETTERS, mine),
        late_events=_scalar(client, COUNT_LATE, mine),
        duplicates=_scalar(client, SUM_DUPLICATES, mine),
        sessions=_scalar(client, COUNT_SESSIONS, mine),
        page_views_1m=views,
        events_1m=stats,
        lost_by_retention=tuple(
            LostRange(int(partition), int(first), int(end), int(records))
            for partition, first, end, records in client.query_rows(DATA_GAPS, parameters={"topic": topic})
        ),
    )


def load_truth(paths: Sequence[Path]) -> GroundTruth:
    """The truth of one or more runs (given in production order), merged."""
    truths = []
    for path in paths:
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise ConfigError(f"no ground truth at {path} (produce a run first, or pass --truth)") from exc
        truths.append(GroundTruth.from_json(data))
    return GroundTruth.merge_all(truths)


def format_report(report: Report) -> Iterable[tuple[str, str, str, str]]:
    """Rows of the report table: check, expected, observed, result (with the listed differences)."""
    for check in report.checks:
        if check.ok:
            yield check.name, check.expected, check.observed, "ok"
            continue
        more = check.total_differences - len(check.differences)
        lines = [*check.differences, *([f"... and {more} more"] if more > 0 else [])]
        yield check.name, check.expected, check.observed, "DIFFERENT\n" + "\n".join(lines)
