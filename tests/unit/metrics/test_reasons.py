"""Dead-letter reason classes: every rule of the job's contract validation lands in a named class."""

from __future__ import annotations

import time
import uuid
from typing import Any

import numpy as np
import orjson
import pytest

from rtap.contract.formats import reader
from rtap.contract.model import LEGACY_FORMAT
from rtap.contract.vocabulary import DEAD_LETTER
from rtap.metrics.reasons import OTHER, REASON_CLASSES, reason_class
from rtap.settings import StreamSettings
from tests.support.records import classify_records, event

STREAM = StreamSettings()
PURCHASE: dict[str, Any] = {"event_type": "purchase", "product_id": "p1", "price": 2.5, "quantity": 1, "order_id": "o1"}

# One broken record per kind of rule, and the class it must get.
BROKEN: list[tuple[str, bytes | None]] = [
    ("empty", None),
    ("too_large", orjson.dumps({**event(1), "padding": "x" * STREAM.max_record_bytes})),
    ("invalid_json", b"\xff\xfe{}"),
    ("invalid_json", b'{"event_id": '),
    ("not_an_object", b"[1, 2]"),
    ("missing_field", orjson.dumps(event(2, user_id=...))),
    ("missing_field", orjson.dumps(event(3, **{**PURCHASE, "order_id": ...}))),
    ("wrong_type", orjson.dumps(event(4, user_id=5))),
    ("wrong_type", orjson.dumps(event(5, **{**PURCHASE, "quantity": 1.5}))),
    ("out_of_range", orjson.dumps(event(6, **{**PURCHASE, "price": -1}))),
    ("out_of_range", orjson.dumps(event(7, **{**PURCHASE, "quantity": 2_000_000}))),
    ("not_allowed", orjson.dumps(event(8, event_type="teleport"))),
    ("not_allowed", orjson.dumps(event(9, schema_version=2))),
    ("bad_format", orjson.dumps(event(10, event_id="not-a-uuid"))),
    ("bad_format", orjson.dumps(event(11, event_time="yesterday"))),
    ("bad_format", orjson.dumps(event(12, country="germany"))),
    ("bad_format", orjson.dumps(event(13, ip_address="999.1.1.1"))),
    ("bad_length", orjson.dumps(event(14, page_url=""))),
    ("bad_length", orjson.dumps(event(15, user_id="u" * 300))),
    ("implausible_time", orjson.dumps(event(16, event_time="2099-01-01T00:00:00Z"))),
]


def test_every_kind_of_contract_violation_has_its_class() -> None:
    records = [(0, offset, payload) for offset, (_, payload) in enumerate(BROKEN)]
    rows = classify_records(
        records,
        watermark_delay_s=STREAM.watermark_delay_s,
        max_record_bytes=STREAM.max_record_bytes,
        max_future_skew_s=STREAM.max_future_skew_s,
    ).to_pylist()
    assert [r["status"] for r in rows] == [DEAD_LETTER] * len(BROKEN)
    got = [(reason_class(r["error"]), r["error"]) for r in rows]
    assert [cls for cls, _ in got] == [cls for cls, _ in BROKEN], got
    assert set(REASON_CLASSES) - {cls for cls, _ in BROKEN} == {OTHER}


@pytest.mark.parametrize("error", [None, "", "something the contract never says"])
def test_unknown_text_is_other(error: str | None) -> None:
    assert reason_class(error) == OTHER


def test_the_previous_systems_format_names_its_time_timestamp_and_gets_the_same_class() -> None:
    legacy = reader(LEGACY_FORMAT, max_record_bytes=STREAM.max_record_bytes, max_future_skew_s=STREAM.max_future_skew_s)
    record = {"event_id": str(uuid.UUID(int=17)), "user_id": "u17", "page_url": "/", "timestamp": "2099-01-01T00:00:00"}
    now_ms = np.array([int(time.time() * 1000)], np.int64)
    (error,) = legacy.validate([orjson.dumps(record)], now_ms).errors.to_pylist()
    assert error.startswith("timestamp: outside ")
    assert reason_class(error) == "implausible_time"
