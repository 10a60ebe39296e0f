"""Request bodies into events: read within the size limit, inflated within the same limit, parsed, and taken
apart into the envelope (write key, the device's send time) and the events.

Nothing here judges an event's fields: the stream job's validation is the one judge of validity. What is
refused here can never become an event: a body that is too large or inflates too far (a gzip bomb is refused
after at most ``limit + 1`` bytes of output, never inflated whole), bytes that are not JSON, and JSON of the
wrong shape.
"""

from __future__ import annotations

import asyncio
import urllib.parse
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from rtap.collect.api import Reason, Refused

_GZIP = 16 + zlib.MAX_WBITS  # zlib's window bits for a gzip header and trailer


@dataclass(frozen=True)
class Envelope:
    """What one request carries: its write key (None when the body has none), the device's send time as it
    was sent (any JSON value, or None), and the events, each a JSON object."""

    write_key: str | None
    sent_at: Any
    events: list[dict[str, Any]]


async def read_body(
    chunks: AsyncIterator[bytes],
    *,
    content_length: str | None,
    content_encoding: str | None,
    limit: int,
    timeout_s: float,
) -> bytes:
    """The request's body, inflated when it is gzip, refused when either form exceeds ``limit`` bytes or the
    body takes longer than ``timeout_s`` to arrive (a client trickling it would hold its connection forever)."""
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise Refused(Reason.BODY_TOO_LARGE, f"the body has {content_length} bytes, more than {limit}")
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise Refused(Reason.BODY_TOO_LARGE, f"the body has more than {limit} bytes")
                parts.append(chunk)
    except TimeoutError as exc:
        raise Refused(Reason.BODY_TIMEOUT, f"the body took longer than {timeout_s:g} s", retry_after_s=1) from exc
    body = b"".join(parts)
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("identity", ""):
        return body
    if encoding in ("gzip", "x-gzip"):
        return inflate(body, limit)
    raise Refused(Reason.UNSUPPORTED_ENCODING, f"Content-Encoding {encoding!r} is not supported (gzip or none)")


def inflate(body: bytes, limit: int) -> bytes:
    """``body`` gunzipped, producing at most ``limit + 1`` bytes: more is a refusal, whatever the ratio."""
    inflater = zlib.decompressobj(_GZIP)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise Refused(Reason.INVALID_GZIP, f"the gzip body does not inflate: {exc}") from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise Refused(Reason.BODY_TOO_LARGE, f"the gzip body inflates to more than {limit} bytes")
    if not inflater.eof or inflater.unused_data:
        raise Refused(Reason.INVALID_GZIP, "the gzip body is truncated or followed by other bytes")
    return out


def query(raw: bytes) -> dict[str, str]:
    """A query string's parameters (the last of a repeated name), decoded strictly: a percent-escape that is
    not UTF-8 (or a byte that is not ASCII) is refused, never replaced by U+FFFD, which would store other bytes
    than those sent."""
    try:
        pairs = urllib.parse.parse_qsl(raw.decode("ascii"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError as exc:
        raise Refused(Reason.INVALID_JSON, f"the query string is not UTF-8: {exc.reason} at byte {exc.start}") from exc
    return dict(pairs)


def parse_json(data: bytes | str, what: str = "the body") -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise Refused(Reason.INVALID_JSON, f"{what} is not JSON: {exc}") from exc


def _write_key(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise Refused(Reason.UNKNOWN_WRITE_KEY, "write_key must be a string")


def batch(document: Any, max_events: int) -> Envelope:
    """``{"write_key": ..., "sent_at": ..., "events": [event, ...]}`` (``POST /v1/batch``)."""
    if not isinstance(document, dict):
        raise Refused(Reason.WRONG_SHAPE, 'a batch is a JSON object: {"write_key", "sent_at", "events": [...]}')
    events = document.get("events")
    if not isinstance(events, list):
        raise Refused(Reason.WRONG_SHAPE, "a batch's events must be a JSON array of objects")
    if not events:
        raise Refused(Reason.EMPTY_BATCH, "the batch has no events", events=0)
    if len(events) > max_events:
        raise Refused(
            Reason.TOO_MANY_EVENTS, f"{len(events)} events in one request, more than {max_events}", events=len(events)
        )
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            raise Refused(Reason.WRONG_SHAPE, f"events[{index}] is not a JSON object", events=len(events))
    return Envelope(_write_key(document.get("write_key")), document.get("sent_at"), events)


def single(document: Any) -> Envelope:
    """One event with its envelope inside it (``POST /v1/event``, the pixel): ``write_key`` is taken out of
    the event, ``sent_at`` stays in it (the collector writes it anyway)."""
    if not isinstance(document, dict):
        raise Refused(Reason.WRONG_SHAPE, "an event is a JSON object")
    key = _write_key(document.pop("write_key", None))
    return Envelope(key, document.get("sent_at"), [document])
