"""The Kafka record the collector writes for each event: the event's own fields as the browser sent them, then the
facts only the server knows, which overwrite any field of the same name a browser sent (``received_at``,
``sent_at``, ``ip``, ``user_agent``, ``site``); keyed by the session. Its format is ``browser-event.v1``
(rtap.contract.formats, which also corrects the device clock from these fields).

The client's address is the connection's peer, or what a configured trusted proxy says it is
(rtap.addresses). It is anonymised by default before it leaves the collector: the last
octet of an IPv4 address, the last 80 bits of an IPv6 one, as Google Analytics and Matomo do; enough to
tell a country or a network, not a household.
"""

from __future__ import annotations

import functools
import ipaddress
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from rtap.addresses import IPAddress
from rtap.collect.api import Reason, Refused
from rtap.contract.model import format_event_time

_IPV4_KEEP = ipaddress.IPv4Network("0.0.0.0/24").netmask  # the first 24 bits
_IPV6_KEEP = ipaddress.IPv6Network("::/48").netmask  # the first 48 bits: 80 zeroed


def anonymize(address: IPAddress) -> IPAddress:
    """The address with its last octet (IPv4) or its last 80 bits (IPv6) zeroed."""
    if isinstance(address, ipaddress.IPv4Address):
        return ipaddress.IPv4Address(int(address) & int(_IPV4_KEEP))
    return ipaddress.IPv6Address(int(address) & int(_IPV6_KEEP))


# Fixed for ever: changing it would give the same visitors other ids.
PIXEL_NAMESPACE = uuid.UUID("2a4e9c1d-7b3f-5e60-8a91-0c5d6e7f8a9b")


def fill_pixel(
    event: dict[str, Any], *, site: str, ip: str | None, user_agent: str | None, referer: str | None, day: str
) -> None:
    """What a script would have made, for an event sent by the pixel of a page without JavaScript (its ``e=`` is
    a constant in the page): a new ``event_id`` (one request is one event: the image is never cached),
    ``anonymous_id`` from the site, the address as it will be stored and the user agent (no cookie can be
    read there), ``session_id`` from that visitor and the UTC day, and ``url`` from ``Referer``. Only fields
    the event does not have."""
    event.setdefault("event_id", str(uuid.uuid4()))
    if not isinstance(event.get("anonymous_id"), str):
        event["anonymous_id"] = str(uuid.uuid5(PIXEL_NAMESPACE, f"{site}/{ip}/{user_agent}"))
    if not isinstance(event.get("session_id"), str):
        event["session_id"] = str(uuid.uuid5(PIXEL_NAMESPACE, f"{event['anonymous_id']}/{day}"))
    if "url" not in event and referer:
        event["url"] = referer


class _Clock:
    """The collector's clock, as every time rtap writes (UTC, milliseconds, 'Z': rtap.contract's
    ``format_event_time``), formatting the date and time once per second rather than once per request."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._prefix = format_event_time(datetime.fromtimestamp(second, UTC))[:-5]  # without ".mmmZ"
            self._second = second
        return f"{self._prefix}.{int((now - second) * 1000):03d}Z"


received_now = _Clock()


def server_fields(
    *, received_at: str, sent_at: Any, ip: IPAddress | None, anonymize_ip: bool, user_agent: str | None, site: str
) -> dict[str, Any]:
    """The fields the collector stamps on every event of one request."""
    return {
        "received_at": received_at,
        "sent_at": sent_at,
        "ip": None if ip is None else _stored_address(ip, anonymize_ip),
        "user_agent": user_agent,
        "site": site,
    }


@functools.lru_cache(maxsize=4096)
def _stored_address(ip: IPAddress, anonymized: bool) -> str:
    return str(anonymize(ip) if anonymized else ip)


def kafka_key(event: dict[str, Any]) -> bytes | None:
    """The session keeps one visit's events in one partition, in order; else the visitor; else none."""
    for name in ("session_id", "anonymous_id"):
        value = event.get(name)
        if isinstance(value, str):
            return value.encode()
    return None


def encode(
    events: list[dict[str, Any]], fields: dict[str, Any], max_event_bytes: int
) -> list[tuple[bytes | None, bytes]]:
    """(key, value) of each event's record; a record over ``max_event_bytes`` refuses the whole request (the
    stream job would only dead-letter it, and the rest of the request is the tracker's to resend), and so does an
    event nested deeper than orjson writes (254 levels; it reads 1,024): a 400, never a 500 a client retries."""
    records = []
    for index, event in enumerate(events):
        key = kafka_key(event)
        event.update(fields)
        try:
            value = orjson.dumps(event)
        except orjson.JSONEncodeError as exc:
            raise Refused(
                Reason.WRONG_SHAPE, f"event {index} cannot be written as JSON: {exc}", events=len(events)
            ) from exc
        if len(value) > max_event_bytes:
            raise Refused(
                Reason.EVENT_TOO_LARGE,
                f"event {index} is {len(value)} bytes as written, more than {max_event_bytes}",
                events=len(events),
            )
        records.append((key, value))
    return records
