"""Source formats: the event shapes rtap reads from Kafka, each validated against its own JSON Schema and
upcast onto contract v1, so that everything after validation (dedup, windows, tables) knows only v1.

- ``clickstream-event.v1``: contract v1 itself (``schemas/clickstream-event.v1.json``).
- ``legacy-click.v1``: the previous system's events (``schemas/legacy-click.v1.json``), one click on a page:
  ``{event_id, user_id, page_url, ip_address, user_agent, timestamp}``. The upcast, declared here and tested
  (tests/unit/contract/test_formats.py):

  - ``event_type`` = ``page_view``: every such event is one page view;
  - ``event_time`` = ``timestamp`` read as UTC (``datetime.utcnow().isoformat()``: no offset, and no fraction
    when the microseconds are 0), truncated to milliseconds like every event time in rtap;
  - ``session_id`` = a UUID v5 of the user and the UTC day of the event: the previous format has no sessions,
    and the same click always gets the same id (a replay or a copy lands in the same session);
  - ``event_id`` in lower case (one UUID however it is spelled, as in v1); ``user_id``, ``page_url``,
    ``ip_address``, ``user_agent`` as they are; every other v1
    field null; ``schema_version`` 1.

  A timestamp of the right shape that is no date (Feb 30) or lies outside 1970-01-01 .. the Kafka record's
  timestamp plus the allowed skew is refused with its reason, as ``event_time`` is in v1.
- ``browser-event.v1``: rtap's browser tracker's events as the collector writes them
  (``schemas/browser-event.v1.json``, rtap.collect, docs/collector.md): the tracker's fields as sent, then the
  collector's own (``received_at``, ``sent_at``, ``ip``, ``user_agent``, ``site``). The upcast:

  - ``event_type`` = ``type``; ``user_id`` = ``anonymous_id``; ``page_url`` = ``url``; ``ip_address`` = ``ip``;
    ``session_id``, ``referrer``, ``user_agent``, ``device``, ``product_id``, ``category``, ``price``,
    ``quantity``, ``order_id`` as they are; ``country`` null; ``schema_version`` 1;
  - ``event_time`` = ``received_at - (sent_at - created_at)``: the device's clock is not trusted for *when*,
    only for *how long before sending*. ``created_at`` and ``sent_at`` come from the same clock, so their
    difference is right however far off that clock is (browsers minutes or hours off are common); subtracted
    from the collector's receive time it gives the event's time on the server's clock, off only by the time
    the request spent on the network. Snowplow derives ``derived_tstamp`` and PostHog its ``timestamp`` the
    same way. When ``sent_at`` or ``created_at`` is missing or no RFC 3339 date-time, or ``sent_at`` is before
    ``created_at`` (a clock set back between the two), ``event_time`` = ``received_at``. The result is
    truncated to milliseconds and checked like v1's ``event_time`` (1970-01-01 .. the Kafka record's
    timestamp plus the allowed skew).

Which topic carries which format is configuration (``RTAP_KAFKA_SOURCE_TOPICS``, rtap.settings).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rtap.contract.model import (
    BROWSER_FORMAT,
    EPOCH,
    LEGACY_FORMAT,
    NATIVE_FORMAT,
    PRICE_SCALE,
    check_document,
    contract_fields,
    known_format,
    parse_rfc3339,
    validate_event,
)
from rtap.contract.validator import RecordValidator, Validated, arrow_type
from rtap.contract.vocabulary import PAGE_VIEW_TYPES
from rtap.errors import ContractError

LEGACY_EVENT_TYPE = PAGE_VIEW_TYPES[0]  # page_view: every click of the previous system views a page
# Fixed for ever: changing it would give the same clicks other session ids.
SESSION_NAMESPACE = uuid.UUID("6f1b7a52-3c1e-5a7e-9d0e-2f4c8b1a9e30")
_KEPT = ("event_id", "user_id", "page_url", "ip_address", "user_agent")
_MS = pa.timestamp("ms", tz="UTC")


def legacy_session_id(user_id: str, event_time: datetime) -> str:
    """The session of a previous-format click: one per user and UTC day (see the module docstring)."""
    return str(uuid.uuid5(SESSION_NAMESPACE, f"{user_id}/{event_time.astimezone(UTC):%Y-%m-%d}"))


def parse_legacy_timestamp(value: str) -> datetime | None:
    """A previous-format timestamp (no offset: UTC) as an aware datetime truncated to milliseconds, or None
    when it is no date (the schema's pattern has checked its shape)."""
    try:
        moment = datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError:
        return None
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _bounds_reason(skew_s: float) -> str:
    return f"timestamp: outside 1970-01-01 .. record timestamp + {skew_s:g}s"


def upcast_legacy(document: dict[str, Any]) -> dict[str, Any]:
    """The reference upcast of one valid previous-format document onto contract v1 (normalised values)."""
    moment = parse_legacy_timestamp(document["timestamp"])
    if moment is None:
        raise ContractError("not a valid date-time", "timestamp")
    if moment < EPOCH:
        raise ContractError("before 1970-01-01", "timestamp")
    event: dict[str, Any] = {f.name: None for f in contract_fields()}
    event.update({name: document.get(name) for name in _KEPT})
    event.update(
        event_type=LEGACY_EVENT_TYPE,
        event_time=moment,
        session_id=legacy_session_id(document["user_id"], moment),
    )
    return event


# Browser fields kept under their own name, and those renamed onto v1.
_BROWSER_KEPT = (
    "event_id",
    "session_id",
    "referrer",
    "user_agent",
    "device",
    "product_id",
    "category",
    "price",
    "quantity",
    "order_id",
)
_BROWSER_RENAMED = {"type": "event_type", "anonymous_id": "user_id", "url": "page_url", "ip": "ip_address"}
_ONE_MS = timedelta(milliseconds=1)


def browser_event_time(received_at: datetime, created_at: Any, sent_at: Any) -> int:
    """The event's time on the collector's clock (see the module docstring), in epoch milliseconds (it may lie
    before 1970, or before year 1): ``received_at - (sent_at - created_at)`` when both device times are
    RFC 3339 date-times and ``sent_at`` is not before ``created_at``, else ``received_at``."""
    received = (received_at - EPOCH) // _ONE_MS
    created = parse_rfc3339(created_at) if isinstance(created_at, str) else None
    sent = parse_rfc3339(sent_at) if isinstance(sent_at, str) else None
    if created is None or sent is None or sent < created:
        return received
    return received - (sent - created) // _ONE_MS


def upcast_browser(document: dict[str, Any]) -> dict[str, Any]:
    """The reference upcast of one valid browser-event.v1 document onto contract v1 (normalised values)."""
    received = parse_rfc3339(document["received_at"])
    if received is None:  # the schema's format check passed: only an impossible date (Feb 30) gets here
        raise ContractError("not a valid date-time", "received_at")
    millis = browser_event_time(received, document.get("created_at"), document.get("sent_at"))
    if millis < 0:
        raise ContractError("before 1970-01-01", "event_time")
    moment = EPOCH + millis * _ONE_MS
    event: dict[str, Any] = {f.name: None for f in contract_fields()}
    event.update({name: document.get(name) for name in _BROWSER_KEPT})
    event.update({v1: document.get(name) for name, v1 in _BROWSER_RENAMED.items()})
    event.update(event_time=moment, schema_version=1)
    if event["price"] is not None:
        event["price"] = Decimal(str(event["price"])).quantize(Decimal(1).scaleb(-PRICE_SCALE))
    return event


def validate_source(record: bytes | str | dict[str, Any], name: str) -> dict[str, Any]:
    """The reference validation of one record of source format ``name``: normalised v1 values, or
    :class:`ContractError`. (For v1 this is :func:`rtap.contract.validate_event`.)"""
    known = known_format(name)
    if known == NATIVE_FORMAT:
        return validate_event(record)
    if known == BROWSER_FORMAT:
        return upcast_browser(check_document(record, name))
    return upcast_legacy(check_document(record, name))


class LegacyReader:
    """The stream job's reader of ``legacy-click.v1``: its schema's :class:`RecordValidator`, then the upcast
    vectorised over the batch (the same rules as :func:`upcast_legacy`)."""

    def __init__(self, *, max_record_bytes: int, max_future_skew_s: float, fast_path: bool = True) -> None:
        self._validator = RecordValidator(
            max_record_bytes=max_record_bytes,
            max_future_skew_s=max_future_skew_s,
            schema=LEGACY_FORMAT,
            fast_path=fast_path,
        )
        self._skew_ms = int(max_future_skew_s * 1000)
        self._bounds = _bounds_reason(max_future_skew_s)
        self._types = {f.name: arrow_type(f) for f in contract_fields()}

    def validate(self, payloads: Sequence[bytes | None], record_ms: np.ndarray) -> Validated:
        verdict = self._validator.validate(payloads, record_ms)
        count = len(payloads)
        errors = verdict.errors.to_pylist()
        times, bad = _legacy_times(verdict.columns["timestamp"], np.asarray(verdict.valid))
        millis = np.asarray(pc.fill_null(times.cast(pa.int64()), 0))
        for index in np.flatnonzero(bad):
            errors[index] = "timestamp: not a valid date-time"
        present = np.asarray(verdict.valid) & ~bad
        for index in np.flatnonzero(present & ((millis < 0) | (millis > record_ms + self._skew_ms))):
            errors[index] = self._bounds
        valid = np.array([e is None for e in errors], dtype=bool)
        users = verdict.columns["user_id"].to_pylist()
        sessions: list[str | None] = [None] * count
        for index in np.flatnonzero(valid):
            sessions[index] = legacy_session_id(users[index], datetime.fromtimestamp(int(millis[index]) / 1000, UTC))
        columns = {name: pa.nulls(count, kind) for name, kind in self._types.items()}
        columns.update({name: verdict.columns[name] for name in _KEPT})
        columns["event_type"] = pa.array([LEGACY_EVENT_TYPE] * count, pa.string())
        columns["event_time"] = times
        columns["session_id"] = pa.array(sessions, pa.string())
        columns["schema_version"] = pa.array(np.ones(count, dtype=np.int32), pa.int32())
        return Validated(columns, pa.array(errors, pa.string()))


def _legacy_times(strings: pa.Array, candidates: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """Timestamps of the rows in ``candidates`` as UTC milliseconds (floor), and the mask of those that are no
    date. Vectorised by Arrow's ISO 8601 cast; a batch holding an impossible date goes row by row."""
    count = len(strings)
    micros = np.zeros(count, dtype=np.int64)
    bad = np.zeros(count, dtype=bool)
    chosen = pc.filter(strings, pa.array(candidates))
    try:
        micros[candidates] = np.asarray(pc.cast(chosen, pa.timestamp("us")).cast(pa.int64()))
    except pa.ArrowInvalid:
        values = strings.to_pylist()
        for index in np.flatnonzero(candidates):
            moment = parse_legacy_timestamp(values[index])
            if moment is None:
                bad[index] = True
            else:
                micros[index] = (moment - EPOCH) // timedelta(microseconds=1)
    millis = pa.array(np.floor_divide(micros, 1000), pa.int64()).cast(_MS)
    keep = pa.array(candidates & ~bad)
    return pc.if_else(keep, millis, pa.nulls(count, _MS)), bad


class BrowserReader:
    """The stream job's reader of ``browser-event.v1``: its schema's :class:`RecordValidator`, then the upcast
    vectorised over the batch (the same rules as :func:`upcast_browser`)."""

    def __init__(self, *, max_record_bytes: int, max_future_skew_s: float, fast_path: bool = True) -> None:
        self._validator = RecordValidator(
            max_record_bytes=max_record_bytes,
            max_future_skew_s=max_future_skew_s,
            schema=BROWSER_FORMAT,
            fast_path=fast_path,
        )
        self._skew_ms = int(max_future_skew_s * 1000)
        self._bounds = f"event_time: outside 1970-01-01 .. record timestamp + {max_future_skew_s:g}s"
        self._types = {f.name: arrow_type(f) for f in contract_fields()}

    def validate(self, payloads: Sequence[bytes | None], record_ms: np.ndarray) -> Validated:
        verdict = self._validator.validate(payloads, record_ms)
        count = len(payloads)
        valid = np.asarray(verdict.valid)
        received = np.asarray(pc.fill_null(verdict.columns["received_at"].cast(pa.int64()), 0))
        created, created_ok = _device_millis(verdict.columns["created_at"], valid)
        sent, sent_ok = _device_millis(verdict.columns["sent_at"], valid)
        corrected = created_ok & sent_ok & (sent >= created)
        millis = np.where(corrected, received - (sent - created), received)
        errors = verdict.errors.to_pylist()
        for index in np.flatnonzero(valid & ((millis < 0) | (millis > record_ms + self._skew_ms))):
            errors[index] = self._bounds
        good = pa.array(np.array([e is None for e in errors], dtype=bool))
        columns = {name: pa.nulls(count, kind) for name, kind in self._types.items()}
        columns.update({name: verdict.columns[name] for name in _BROWSER_KEPT})
        columns.update({v1: verdict.columns[name] for name, v1 in _BROWSER_RENAMED.items()})
        columns["event_time"] = pc.if_else(good, pa.array(millis, pa.int64()).cast(_MS), pa.nulls(count, _MS))
        columns["schema_version"] = pa.array(np.ones(count, dtype=np.int32), pa.int32())
        return Validated(columns, pa.array(errors, pa.string()))


# A device time in rtap's canonical form (UTC, 'Z', at most milliseconds): read vectorised by Arrow.
_CANONICAL_TIME = r"^[1-9]\d{3}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$"


def _device_millis(strings: pa.Array, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A device time column (any strings) as epoch milliseconds, and the mask of the ``rows`` that are an
    RFC 3339 date-time (:func:`rtap.contract.model.parse_rfc3339`'s reading, by Arrow where it can)."""
    count = len(strings)
    millis = np.zeros(count, dtype=np.int64)
    ok = np.zeros(count, dtype=bool)
    canonical = np.asarray(pc.fill_null(pc.match_substring_regex(strings, _CANONICAL_TIME), False)) & rows
    try:
        parsed = pc.cast(pc.filter(strings, pa.array(canonical)), _MS)
        millis[canonical] = np.asarray(parsed.cast(pa.int64()))
        ok |= canonical
    except pa.ArrowInvalid:  # an impossible date among them (Feb 30): each one on its own below
        canonical[:] = False
    values = strings.to_pylist()
    for index in np.flatnonzero(rows & ~canonical):
        value = values[index]
        moment = parse_rfc3339(value) if value is not None else None
        if moment is not None:
            millis[index] = (moment - EPOCH) // _ONE_MS
            ok[index] = True
    return millis, ok


SourceReader = RecordValidator | LegacyReader | BrowserReader


def reader(name: str, *, max_record_bytes: int, max_future_skew_s: float) -> SourceReader:
    """The stream job's reader of source format ``name``: v1 columns and a reason per record."""
    known = known_format(name)
    if known == NATIVE_FORMAT:
        return RecordValidator(max_record_bytes=max_record_bytes, max_future_skew_s=max_future_skew_s)
    if known == BROWSER_FORMAT:
        return BrowserReader(max_record_bytes=max_record_bytes, max_future_skew_s=max_future_skew_s)
    return LegacyReader(max_record_bytes=max_record_bytes, max_future_skew_s=max_future_skew_s)
