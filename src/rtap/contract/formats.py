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

Which topic carries which format is configuration (``RTAP_KAFKA_SOURCE_TOPICS``, rtap.settings).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rtap.contract.model import (
    EPOCH,
    LEGACY_FORMAT,
    NATIVE_FORMAT,
    check_document,
    contract_fields,
    known_format,
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
        event_id=document["event_id"].lower(),  # one UUID, however it is spelled (as in v1)
        event_type=LEGACY_EVENT_TYPE,
        event_time=moment,
        session_id=legacy_session_id(document["user_id"], moment),
    )
    return event


def validate_source(record: bytes | str | dict[str, Any], name: str) -> dict[str, Any]:
    """The reference validation of one record of source format ``name``: normalised v1 values, or
    :class:`ContractError`. (For v1 this is :func:`rtap.contract.validate_event`.)"""
    if known_format(name) == NATIVE_FORMAT:
        return validate_event(record)
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


SourceReader = RecordValidator | LegacyReader


def reader(name: str, *, max_record_bytes: int, max_future_skew_s: float) -> SourceReader:
    """The stream job's reader of source format ``name``: v1 columns and a reason per record."""
    if known_format(name) == NATIVE_FORMAT:
        return RecordValidator(max_record_bytes=max_record_bytes, max_future_skew_s=max_future_skew_s)
    return LegacyReader(max_record_bytes=max_record_bytes, max_future_skew_s=max_future_skew_s)
