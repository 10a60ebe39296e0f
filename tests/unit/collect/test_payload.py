"""Bodies into events: the size limit holds for the body and for what gzip inflates to, whatever the ratio."""

from __future__ import annotations

import asyncio
import functools
import gzip
import zlib
from collections.abc import AsyncIterator, Callable

import pytest

from rtap.collect import payload
from rtap.collect.api import Reason, Refused

LIMIT = 1024


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def read(*parts: bytes, length: str | None = None, encoding: str | None = None) -> bytes:
    return asyncio.run(
        payload.read_body(_chunks(*parts), content_length=length, content_encoding=encoding, limit=LIMIT, timeout_s=5)
    )


def refused(call: Callable[[], object]) -> Reason:
    with pytest.raises(Refused) as caught:
        call()
    return caught.value.reason


def test_a_body_within_the_limit_is_read_whole_and_gzip_is_inflated() -> None:
    assert read(b"ab", b"cd") == b"abcd"
    assert read(gzip.compress(b"x" * LIMIT), encoding="gzip") == b"x" * LIMIT
    assert read(gzip.compress(b"{}"), encoding=" GZIP ") == b"{}"


def test_too_large_by_its_length_header_by_its_bytes_or_once_inflated() -> None:
    assert refused(lambda: read(b"", length=str(LIMIT + 1))) == Reason.BODY_TOO_LARGE
    assert refused(lambda: read(b"x" * 600, b"x" * 600)) == Reason.BODY_TOO_LARGE
    assert refused(lambda: read(gzip.compress(b"x" * (LIMIT + 1)), encoding="gzip")) == Reason.BODY_TOO_LARGE


def test_a_gzip_bomb_is_refused_after_inflating_at_most_the_limit() -> None:
    bomb = gzip.compress(b"\0" * (256 * 1024 * 1024), compresslevel=9)  # 256 MiB in about 250 KB
    inflated: list[int] = []
    real = zlib.decompressobj

    class Counting:
        def __init__(self, wbits: int) -> None:
            self._inner = real(wbits)

        def decompress(self, data: bytes, max_length: int) -> bytes:
            out = self._inner.decompress(data, max_length)
            inflated.append(len(out))
            return out

        def __getattr__(self, name: str) -> object:
            return getattr(self._inner, name)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(zlib, "decompressobj", Counting)
        with pytest.raises(Refused) as caught:
            payload.inflate(bomb, LIMIT)
    assert caught.value.reason == Reason.BODY_TOO_LARGE
    assert sum(inflated) <= LIMIT + 1


def test_a_body_that_trickles_in_past_its_deadline_is_refused_and_may_be_sent_again() -> None:
    async def trickle() -> AsyncIterator[bytes]:
        while True:  # a byte now and then, for ever: what a slow-loris client sends
            yield b"x"
            await asyncio.sleep(0.01)

    async def read_slowly() -> bytes:
        return await payload.read_body(
            trickle(), content_length=None, content_encoding=None, limit=LIMIT, timeout_s=0.2
        )

    with pytest.raises(Refused) as caught:
        asyncio.run(read_slowly())
    assert caught.value.reason is Reason.BODY_TIMEOUT
    assert caught.value.status == 408
    assert caught.value.retry_after_s == 1


def test_broken_gzip_and_unknown_encodings_are_refused() -> None:
    assert refused(lambda: read(b"not gzip", encoding="gzip")) == Reason.INVALID_GZIP
    assert refused(lambda: read(gzip.compress(b"{}")[:-4], encoding="gzip")) == Reason.INVALID_GZIP
    assert refused(lambda: read(gzip.compress(b"{}") + b"junk", encoding="gzip")) == Reason.INVALID_GZIP
    assert refused(lambda: read(b"{}", encoding="br")) == Reason.UNSUPPORTED_ENCODING
    assert read(b"{}", encoding="identity") == b"{}"


def test_envelopes_take_the_batch_and_the_single_event_apart() -> None:
    envelope = payload.batch({"write_key": "k", "sent_at": "t", "events": [{"a": 1}, {"b": 2}]}, max_events=2)
    assert (envelope.write_key, envelope.sent_at, envelope.events) == ("k", "t", [{"a": 1}, {"b": 2}])
    single = payload.single({"write_key": "k", "sent_at": "t", "type": "page_view"})
    assert (single.write_key, single.sent_at, single.events) == ("k", "t", [{"sent_at": "t", "type": "page_view"}])
    assert refused(lambda: payload.batch({"events": [{}] * 3}, max_events=2)) == Reason.TOO_MANY_EVENTS
    assert refused(lambda: payload.batch({"events": []}, max_events=2)) == Reason.EMPTY_BATCH
    assert refused(lambda: payload.batch({"events": [{}, "x"]}, max_events=2)) == Reason.WRONG_SHAPE
    assert refused(lambda: payload.batch({"write_key": 7, "events": [{}]}, max_events=2)) == Reason.UNKNOWN_WRITE_KEY
    assert refused(lambda: payload.single([1])) == Reason.WRONG_SHAPE
    assert refused(lambda: payload.parse_json(b"\xff")) == Reason.INVALID_JSON


def test_a_query_is_decoded_strictly_as_utf8() -> None:
    assert payload.query(b"key=k&e=%7B%22t%22%3A%22caf%C3%A9%22%7D&e=last") == {"key": "k", "e": "last"}
    assert payload.query(b"e=caf%C3%A9+x") == {"e": "café x"}
    for raw in (b"e=caf%FF", b"e=caf%C3", "e=café".encode()):  # a bad escape, a cut one, a raw non-ASCII byte
        assert refused(functools.partial(payload.query, raw)) == Reason.INVALID_JSON
