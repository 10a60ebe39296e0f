"""Values in Confluent Schema Registry's wire format (a zero byte, the schema's 4-byte id, then the JSON document), as
Confluent's JSON Schema serializers write them: read as the document after the header, in the job and the reference
alike. (tests/e2e/test_outside_input.py sends the real serializer's output through the running job.)"""

from __future__ import annotations

import struct

import orjson
from hypothesis import given
from hypothesis import strategies as st

from rtap.contract.model import NATIVE_FORMAT, check_document, unframed
from rtap.contract.vocabulary import ACCEPTED, DEAD_LETTER
from tests.support.records import classify_records, event


def framed(document: bytes, schema_id: int) -> bytes:
    return b"\x00" + struct.pack(">I", schema_id) + document


@given(schema_id=st.integers(0, 2**32 - 1))
def test_a_framed_event_is_the_event_after_its_header(schema_id: int) -> None:
    """Whatever the id's bytes (zeros, a '{', a quote), the verdict and the columns are those of the plain event."""
    document = orjson.dumps(event(1, "2026-11-29T12:00:00Z"))
    (plain,) = classify_records([(0, 0, document)]).to_pylist()
    (wrapped,) = classify_records([(0, 0, framed(document, schema_id))]).to_pylist()

    sizes = ("raw_size", "record_bytes")  # as read: the header's 5 bytes included
    assert {k: v for k, v in wrapped.items() if k not in sizes} == {k: v for k, v in plain.items() if k not in sizes}
    assert [wrapped[k] - plain[k] for k in sizes] == [5, 5]
    assert plain["status"] == ACCEPTED
    assert check_document(framed(document, schema_id), NATIVE_FORMAT) == check_document(document, NATIVE_FORMAT)


def test_a_framed_value_that_is_no_json_is_a_dead_letter_as_written() -> None:
    """An Avro or Protobuf value behind the header, or the header alone: dead letters that keep every byte."""
    avro = framed(b"\x02H\x0cpage_view", 7)
    header_only = framed(b"", 7)
    rows = classify_records([(0, 0, avro), (0, 1, header_only), (0, 2, b"\x00")]).to_pylist()

    assert [row["status"] for row in rows] == [DEAD_LETTER] * 3
    assert [row["error"].split(" (")[0] for row in rows] == ["invalid JSON"] * 3
    assert [(row["raw"], row["raw_size"]) for row in rows] == [(avro, len(avro)), (header_only, 5), (b"\x00", 1)]


def test_unframed_leaves_every_json_text_as_it_is() -> None:
    for payload in (b"{}", b" {}", b"[]", b"", b"\x00\x00\x00\x00"):  # the last: too short for a header
        assert unframed(payload) == payload
    assert unframed(framed(b"{}", 1)) == b"{}"
