"""Ids: distinct version 4 UUIDs, reproducible from their seed, however they are taken."""

from __future__ import annotations

import uuid

from rtap.generate.ids import ID_CHUNK, UuidStream, numpy_rng
from tests.support.clickstream import Run, try_parse


def test_ids_are_distinct_version_4_uuids(dirty: Run) -> None:
    valid = {r.value: e for r in dirty.records if (e := try_parse(r.value)) is not None}
    event_ids = {e["event_id"] for e in valid.values()}
    session_ids = {e["session_id"] for e in valid.values()}
    order_ids = {e["order_id"] for e in valid.values() if e["order_id"] is not None}
    assert len(event_ids) == len(valid)  # only byte-identical copies share an id
    assert order_ids
    assert len(event_ids | session_ids | order_ids) == len(event_ids) + len(session_ids) + len(order_ids)
    for text in event_ids | session_ids | order_ids:
        parsed_id = uuid.UUID(text)
        assert (str(parsed_id), parsed_id.version, parsed_id.variant) == (text, 4, uuid.RFC_4122)


def test_a_stream_is_its_seed_however_it_is_taken_and_wraps_each_id() -> None:
    whole = UuidStream(numpy_rng("test-ids"), b"<", b">").take(ID_CHUNK + 2)
    split = UuidStream(numpy_rng("test-ids"), b"<", b">")
    assert [split.next(), *split.take(ID_CHUNK), split.next()] == whole
    assert UuidStream(numpy_rng("other")).take(3) != [wrapped[1:-1] for wrapped in whole[:3]]
    for wrapped in whole:
        assert wrapped[:1] == b"<"
        assert wrapped[-1:] == b">"
        parsed_id = uuid.UUID(wrapped[1:-1].decode())
        assert (parsed_id.version, parsed_id.variant) == (4, uuid.RFC_4122)
    assert len(set(whole)) == len(whole)
