"""``rtap dlq reasons`` and ``rtap dlq show``: what was rejected, why, since when, and what it looked like.

The first question after a spike of dead letters is which reasons, how many, since when; the second is a few
of the payloads. Both are answered from the warehouse's ``dead_letters`` table (every rejected record, its
Kafka coordinates, the contract's reason and the raw bytes as text) through the read-only client, so they work
while ``rtap up`` owns the warehouse (through its socket) and against a ClickHouse server alike.

Filters are a time range on ``received_at`` (the table is partitioned by day on it, so a range reads only its
days), an exact topic and a case-insensitive piece of the reason. Every value reaches ClickHouse as a query
parameter; the SQL text is fixed. A payload that is not valid UTF-8 (a malformed record may be anything) is
shown with U+FFFD in place of the invalid bytes (``toValidUTF8``).

Reasons are counted by class: the reason without the detail that differs from record to record (the parser's
line and column, a record's size), so a producer sending truncated JSON is one line, not one per cut; ``--detail``
counts the exact texts. Everything printed from a payload or a reason is escaped (:func:`printable`): a hostile
record must not reach the operator's terminal as control sequences or reordered text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rtap.console import UNSAFE_CANDIDATE, UNSAFE_CATEGORIES, inert
from rtap.errors import ConfigError
from rtap.warehouse import WarehouseClient
from rtap.warehouse.sql import quote_string

DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
MAX_LIMIT = 10_000
# `rtap dlq show` prints this much of each payload unless --full: a 64 KiB record must not flood a terminal.
PREVIEW_CHARS = 300

# A reason's class: its text without the parser's position ("...: line 1 column 248 (char 247)") and without a
# record's size ("record too large: 70123 bytes"), the two details of the contract's reasons that vary per record.
# One list for both languages: ClickHouse's RE2 and Python's re read these patterns alike.
_REASON_DETAILS = (r": line [0-9]+ column [0-9]+ \(char [0-9]+\)", r": [0-9]+ bytes")


def _class_sql(expression: str, patterns: tuple[str, ...]) -> str:
    for pattern in patterns:
        expression = f"replaceRegexpAll({expression}, {quote_string(pattern)}, '')"
    return expression


REASON_CLASS = _class_sql("error", _REASON_DETAILS)


def reason_class(reason: str) -> str:
    """The class of one reason, as :data:`REASON_CLASS` computes it in the warehouse."""
    for pattern in _REASON_DETAILS:
        reason = re.sub(pattern, "", reason)
    return reason


REASONS = """
SELECT $reason AS reason, count() AS records, min(received_at) AS first_seen, max(received_at) AS last_seen
FROM {db}.dead_letters FINAL
WHERE $filters
GROUP BY reason
ORDER BY records DESC, reason
LIMIT {limit:UInt32}
"""
TOTAL = "SELECT count() FROM {db}.dead_letters FINAL WHERE $filters"
RECENT = """
SELECT received_at, topic, `partition`, `offset`, kafka_timestamp, error,
       substringUTF8(toValidUTF8(raw), 1, {chars:UInt32}) AS preview, lengthUTF8(toValidUTF8(raw)) AS raw_chars,
       batch_id
FROM {db}.dead_letters FINAL
WHERE $filters
ORDER BY received_at DESC, topic, `partition`, `offset` DESC
LIMIT {limit:UInt32}
"""
_IN_RANGE = "received_at >= {from:DateTime64(3,'UTC')} AND received_at < {to:DateTime64(3,'UTC')}"
_TOPIC = "topic = {topic:String}"
_REASON = "positionCaseInsensitiveUTF8(error, {reason:String}) > 0"


@dataclass(frozen=True)
class Filters:
    """Which dead letters: received in [start, end), optionally of one topic and with a reason containing text."""

    start: datetime
    end: datetime
    topic: str | None = None
    reason: str | None = None

    def sql(self) -> str:
        conditions = [_IN_RANGE]
        if self.topic is not None:
            conditions.append(_TOPIC)
        if self.reason is not None:
            conditions.append(_REASON)
        return " AND ".join(conditions)

    def parameters(self) -> dict[str, Any]:
        values: dict[str, Any] = {"from": self.start, "to": self.end}
        if self.topic is not None:
            values["topic"] = self.topic
        if self.reason is not None:
            values["reason"] = self.reason
        return values

    def describe(self) -> str:
        """The filters in words, for the line above a result."""
        where = f"from {_stamp(self.start)} to {_stamp(self.end)} UTC"
        where += f", topic {self.topic}" if self.topic is not None else ", every topic"
        return where + (f", reason containing {self.reason!r}" if self.reason is not None else "")


@dataclass(frozen=True)
class Reason:
    reason: str
    records: int
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True)
class DeadLetter:
    received_at: datetime
    topic: str
    partition: int
    offset: int
    kafka_timestamp: datetime
    error: str
    raw: str
    raw_chars: int
    batch_id: int

    @property
    def cut(self) -> bool:
        """Whether ``raw`` is only the start of the payload."""
        return len(self.raw) < self.raw_chars


def parse_instant(value: str, option: str) -> datetime:
    """An ISO 8601 instant, naive meaning UTC (rtap stores UTC); one clear line when it is not one, or when its
    offset moves it out of Python's calendar (0001-01-01T00:00+01:00 is in year 0 in UTC)."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ConfigError(
            f"{option} must be an ISO 8601 date-time such as 2026-01-31T12:00:00Z, got {value!r}"
        ) from None
    try:
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:
        raise ConfigError(f"{option} must be between the years 1 and 9999 in UTC, got {value!r}") from None


def parse_duration(value: str, option: str) -> timedelta:
    """``90s``, ``15m``, ``6h`` or ``2d``."""
    match = DURATION.match(value)
    try:  # int() refuses more than 4,300 digits; timedelta more than 999,999,999 days
        duration = timedelta(**{DURATION_UNITS[match[2]]: int(match[1])}) if match is not None else None
    except (ValueError, OverflowError):
        raise ConfigError(f"{option} reaches back beyond the year 1, got {value!r}") from None
    if not duration:
        raise ConfigError(f"{option} must be a positive duration such as 90s, 15m, 6h or 2d, got {value!r}")
    return duration


def resolve_filters(
    *,
    since: str | None,
    start: str | None,
    end: str | None,
    topic: str | None,
    reason: str | None,
    now: datetime,
    default_since: str = "1h",
) -> Filters:
    """The command-line options as :class:`Filters`: ``--since`` or ``--from`` (with an optional ``--to``)."""
    if since is not None and start is not None:
        raise ConfigError("give either --since or --from, not both")
    stop = parse_instant(end, "--to") if end is not None else now
    if start is not None:
        begin = parse_instant(start, "--from")
    else:
        back = since or default_since
        try:
            begin = stop - parse_duration(back, "--since")
        except OverflowError:
            raise ConfigError(
                f"--since {back} before {stop.isoformat()} reaches back beyond the year 1; give a shorter one or --from"
            ) from None
    if begin >= stop:
        raise ConfigError(f"--from ({begin.isoformat()}) must be before --to ({stop.isoformat()})")
    if topic is not None and not topic.strip():
        raise ConfigError("--topic must not be empty")
    if reason is not None and not reason.strip():
        raise ConfigError("--reason must not be empty")
    return Filters(begin, stop, topic, reason)


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ConfigError(f"--limit must be between 1 and {MAX_LIMIT:,}, got {limit}")
    return limit


def reasons(
    client: WarehouseClient, filters: Filters, *, limit: int = 50, detail: bool = False
) -> tuple[int, list[Reason]]:
    """The number of dead letters that match, and their reason classes (``detail``: exact reasons) with counts,
    most frequent first."""
    parameters = filters.parameters()
    (total,) = client.query_rows(TOTAL.replace("$filters", filters.sql()), parameters=parameters)[0]
    sql = REASONS.replace("$reason", "error" if detail else REASON_CLASS).replace("$filters", filters.sql())
    rows = client.query_rows(sql, parameters={**parameters, "limit": check_limit(limit)})
    return int(total), [Reason(r, int(n), _utc(first), _utc(last)) for r, n, first, last in rows]


def recent(client: WarehouseClient, filters: Filters, *, limit: int = 10, full: bool = False) -> list[DeadLetter]:
    """The newest dead letters that match, newest first; payloads cut to :data:`PREVIEW_CHARS` unless ``full``."""
    rows = client.query_rows(
        RECENT.replace("$filters", filters.sql()),
        parameters={
            **filters.parameters(),
            "limit": check_limit(limit),
            "chars": 2**31 - 1 if full else PREVIEW_CHARS,  # substring(s, 1, 0) is '': "all" is a big number
        },
    )
    return [
        DeadLetter(_utc(at), topic, int(p), int(o), _utc(ts), error, raw, int(n), int(batch))
        for at, topic, p, o, ts, error, raw, n, batch in rows
    ]


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def printable(text: str) -> str:
    """``text`` on one line with nothing a terminal would act on (:func:`rtap.console.inert`): controls (C0, C1),
    bidi and other format characters and line separators written as escapes; printable text in any script stays."""
    return inert(text)


def _json_escape(match: re.Match[str]) -> str:
    char = match.group(0)
    if unicodedata.category(char) not in UNSAFE_CATEGORIES:
        return char
    encoded = char.encode("utf-16-be")  # JSON writes a character beyond the BMP as its surrogate pair
    return "".join(f"\\u{int.from_bytes(encoded[i : i + 2], 'big'):04x}" for i in range(0, len(encoded), 2))


def json_line(document: dict[str, Any]) -> str:
    """``document`` as one line of JSON with the same characters escaped as :func:`printable` escapes (as JSON
    escapes: a script reading it gets the exact text back, a terminal showing it gets nothing to act on)."""
    import orjson

    return UNSAFE_CANDIDATE.sub(_json_escape, orjson.dumps(document).decode())


def reason_lines(total: int, found: list[Reason], filters: Filters) -> list[str]:
    """``rtap dlq reasons`` as text lines: a summary, then one line per reason."""
    if not total:
        return [f"no dead letters {filters.describe()}"]
    lines = [
        f"{total:,} dead letters {filters.describe()}",
        "  records   share  first seen (UTC)     last seen (UTC)      reason",
    ]
    for item in found:
        share = 100 * item.records / total
        lines.append(
            f"  {item.records:>7,}  {share:5.1f}%  {_stamp(item.first_seen)}  {_stamp(item.last_seen)}  "
            f"{printable(item.reason)}"
        )
    rest = total - sum(item.records for item in found)
    if rest:
        lines.append(f"  {rest:>7,}  with other reasons (raise --limit to list them)")
    return lines


def letter_lines(letter: DeadLetter) -> list[str]:
    """One dead letter as three lines: where it came from, why it was rejected, what it held."""
    size = f"{letter.raw_chars:,} characters" + (f", first {len(letter.raw):,} shown" if letter.cut else "")
    return [
        f"{_stamp(letter.received_at)} UTC  {letter.topic} partition {letter.partition} offset {letter.offset}  "
        f"(Kafka timestamp {_stamp(letter.kafka_timestamp)}, batch {letter.batch_id})",
        f"  reason: {printable(letter.error)}",
        f"  raw ({size}): {printable(letter.raw)}",
    ]


def letter_json(letter: DeadLetter) -> dict[str, Any]:
    return {
        "received_at": letter.received_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "topic": letter.topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "kafka_timestamp": letter.kafka_timestamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "error": letter.error,
        "raw": letter.raw,
        "raw_chars": letter.raw_chars,
        "batch_id": letter.batch_id,
    }
