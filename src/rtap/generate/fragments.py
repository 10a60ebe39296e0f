"""The JSON bytes of a record, as the pieces it is joined from, each encoded once and reused.

The generator has about two microseconds per record (see :mod:`rtap.generate.generator`): too little to
build and encode a dict per event. Most of a record is the same in many events, so a record is one
``bytes.join`` of five pieces, each encoded when first needed and then reused:

    head      {"event_id":"<uuid>","event_time":"               per event: EVENT_HEAD around an id, in bulk
    time      2026-11-29T12:00:00.123Z",                        per send time (TimeFragments)
    step      "event_type":…,"page_url":…[,"product_id":…,      per funnel step (page_step, product_step),
              "category":…,"price":…,"quantity":…]              then a purchase's ,"order_id":"…" (order)
    referrer  ,"referrer":<url or null>                         per URL (referrer)
    tail      ,"user_id":…,"session_id":"…","ip_address":…,     per session (session_tail of user_head,
              "user_agent":…,"device":…,"country":…,            client and agent)
              "schema_version":1}
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from rtap.generate.catalog import Product

# What the event id stream wraps each id in: the record's start up to the event_time's first digit.
EVENT_HEAD = (b'{"event_id":"', b'","event_time":"')
_ID_START = len(EVENT_HEAD[0])
_UUID_LENGTH = 36
# The millisecond part of every time fragment, with the bytes that close the field, precomputed.
_MILLIS = tuple(b'.%03dZ",' % millis for millis in range(1000))
_SCHEMA_END = b',"schema_version":1}'
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _json(value: Any) -> bytes:
    return orjson.dumps(value)


def event_id(head: bytes) -> str:
    """The event_id inside a head fragment (for the truth, which needs it only for records sent twice)."""
    return head[_ID_START : _ID_START + _UUID_LENGTH].decode()


class TimeFragments:
    """``<event_time>",`` for epoch milliseconds: the contract's canonical form (``format_event_time``).

    Sends come in time order, so the part up to the second is formatted (strftime, slow) once per second and
    kept; the milliseconds come from a table.
    """

    def __init__(self) -> None:
        self._second = -1
        self._second_prefix = b""

    def of(self, ms: int) -> bytes:
        second = ms // 1000
        if second != self._second:
            self._second = second
            self._second_prefix = (_EPOCH + timedelta(seconds=second)).strftime("%Y-%m-%dT%H:%M:%S").encode()
        return self._second_prefix + _MILLIS[ms - second * 1000]


def page_step(event_type: str, url: str) -> bytes:
    """The step fragment of an event without a product: page views, searches, the checkout."""
    return b'"event_type":' + _json(event_type) + b',"page_url":' + _json(url)


def product_step(event_type: str, url: str, product: Product, quantity: int) -> bytes:
    """The step fragment of an event about ``quantity`` of ``product``: views, cart changes, purchases."""
    return (
        page_step(event_type, url)
        + b',"product_id":'
        + _json(product.product_id)
        + b',"category":'
        + _json(product.category)
        + b',"price":'
        + _json(product.price)
        + b',"quantity":'
        + _json(quantity)
    )


def order(order_id: bytes) -> bytes:
    """What follows the step fragment of a purchase: the session's order id."""
    return b',"order_id":"' + order_id + b'"'


def referrer(url: str | None) -> bytes:
    """The referrer field: the URL of the visitor's previous event, or where the session came from (None: direct)."""
    return b',"referrer":' + _json(url)


def user_head(user_id: str) -> bytes:
    """A tail's start, the same for all of a user's sessions: up to the session id's first digit."""
    return b',"user_id":' + _json(user_id) + b',"session_id":"'


def session_tail(head: bytes, session_key: bytes, client: bytes) -> bytes:
    """The tail of every event of one session: the user's :func:`user_head`, the session id and the client."""
    return b"".join((head, session_key, b'"', client))


def client(ip: str, agent: bytes) -> bytes:
    """The client fields from the address on, to the end of the record."""
    return b',"ip_address":' + _json(ip) + agent


def agent(user_agent: str, device: str, country: str) -> bytes:
    """The client fields after the address, to the end of the record: what a visitor keeps on another network."""
    return (
        b',"user_agent":' + _json(user_agent) + b',"device":' + _json(device) + b',"country":' + _json(country)
    ) + _SCHEMA_END
