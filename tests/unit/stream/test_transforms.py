"""Each transform on small Arrow batches: every kind of invalid record, late, duplicate, normalisation."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import orjson
import pyarrow as pa
import pytest

from rtap.contract.vocabulary import ACCEPTED, COPY_LOOKBACK_MS, DEAD_LETTER, DUPLICATE, LATE, STATUSES
from rtap.stream.transforms import bound_raw, later_copies
from tests.support.records import MAX_RECORD_BYTES, classify_records, event


def classify(records: Sequence[tuple[int, int, object]], high_water=None) -> dict[tuple[int, int], dict]:
    out = classify_records(records, high_water).to_pylist()
    return {(row["kafka_partition"], row["kafka_offset"]): row for row in out}


INVALID = [
    (b"{broken", "invalid JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b"\xff\xfe", "invalid JSON"),
    (b"x" * 5000, "record too large: 5000 bytes"),
    (event(1, user_id=...), "user_id: required field missing or null"),
    (event(1, user_id=None), "user_id: required field missing or null"),
    (event(1, user_id=""), "user_id: shorter than 1"),
    (event(1, user_id=7), "user_id: expected string, got number"),
    (event(1, event_type="teleport"), "event_type: must be one of"),
    (event(1, event_id="not-a-uuid"), "event_id: not a valid uuid"),
    (event(1, event_time="yesterday"), "event_time: not a valid date-time"),
    (event(1, event_time="2026-02-30T10:00:00Z"), "event_time: not a valid date-time"),
    (event(1, event_time="2031-01-01T00:00:00Z"), "event_time: outside 1970-01-01"),
    (event(1, price="12.5"), "price: expected number, got string"),
    (event(1, price=-1), "price: below 0"),
    (event(1, price=1e300), "price: "),
    (event(1, quantity=1.5), "quantity: expected integer"),
    (event(1, quantity=0), "quantity: below 1"),
    (event(1, device="fridge"), "device: must be one of"),
    (event(1, country="Germany"), "country: does not match pattern"),
    (event(1, ip_address="300.1.1.1"), "ip_address: not a valid ipv4 or ipv6"),
    (event(1, schema_version=2), "schema_version: must be one of [1]"),
    (event(1, event_type="purchase", product_id="p1", price=9.99, quantity=1), "order_id: required when"),
]


@pytest.mark.parametrize(("payload", "reason"), INVALID, ids=[r for _, r in INVALID])
def test_each_kind_of_invalid_record_is_a_dead_letter_with_its_reason(payload, reason) -> None:
    row = classify([(0, 0, payload)])[(0, 0)]
    assert row["status"] == DEAD_LETTER
    assert row["error"].startswith(reason)
    sent = payload if isinstance(payload, bytes) else orjson.dumps(payload)  # as kafka_records sends a dict
    assert row["raw"] == sent[:MAX_RECORD_BYTES]  # whole up to the size limit, which only too-large records pass
    assert row["raw_size"] == len(sent)


def test_valid_record_is_normalised_and_extra_fields_are_ignored() -> None:
    payload = event(
        1,
        event_time="2026-11-29T13:00:00.5+01:00",
        event_type="purchase",
        product_id="p1",
        price=19.99,
        quantity=2,
        order_id="o1",
        ip_address="2001:db8::1",
        unknown_field={"nested": [1, 2]},
    )
    row = classify([(0, 0, payload)])[(0, 0)]
    assert row["status"] == ACCEPTED, row["error"]
    assert row["event_time"] == datetime(2026, 11, 29, 12, 0, 0, 500000, tzinfo=UTC)
    assert row["price"] == Decimal("19.990000")
    assert row["schema_version"] == 1
    assert row["raw"] is None


def test_late_is_behind_the_watermark_of_its_own_partition() -> None:
    rows = classify(
        [
            (0, 0, event(1, "2026-11-29T12:01:00Z")),
            (0, 1, event(2, "2026-11-29T12:00:29.999Z")),  # 12:01:00 - 30 s = 12:00:30 -> late
            (0, 2, event(3, "2026-11-29T12:00:30Z")),  # exactly at the watermark -> on time
            (1, 0, event(4, "2026-11-29T12:00:00Z")),  # another partition: no high water yet
            (1, 1, b"{broken"),  # invalid records never move the watermark
        ],
    )
    assert [rows[k]["status"] for k in [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]] == [
        ACCEPTED,
        LATE,
        ACCEPTED,
        ACCEPTED,
        DEAD_LETTER,
    ]


def test_high_water_from_earlier_batches_is_carried() -> None:
    carried = {0: datetime(2026, 11, 29, 12, 5, tzinfo=UTC)}
    rows = classify([(0, 10, event(1, "2026-11-29T12:04:00Z")), (1, 0, event(2, "2026-11-29T12:04:00Z"))], carried)
    assert rows[(0, 10)]["status"] == LATE
    assert rows[(1, 0)]["status"] == ACCEPTED


def test_the_first_copy_of_an_event_is_accepted_and_later_copies_are_duplicates() -> None:
    copy = event(7, "2026-11-29T12:00:00Z")
    rows = classify([(2, 5, copy), (2, 6, copy), (2, 9, copy), (2, 3, event(8))])
    assert [rows[(2, o)]["status"] for o in (3, 5, 6, 9)] == [ACCEPTED, ACCEPTED, DUPLICATE, DUPLICATE]


def test_a_copy_in_a_neighbouring_minute_is_a_duplicate_and_one_two_minutes_away_another_event() -> None:
    """The rule the warehouse's lookup of stored copies can follow (the minutes around a copy), so the same records
    count the same in one batch as across several: 12:00:10, a copy at 12:01:50 (the next minute), one at 12:02:10
    (two minutes from the only accepted copy: the 12:01 copy was not accepted), one at 12:02:59."""
    at = ["12:00:10", "12:01:50", "12:02:10", "12:02:59"]
    rows = classify([(0, i, event(7, f"2026-11-29T{t}Z")) for i, t in enumerate(at)])
    assert [rows[(0, i)]["status"] for i in range(4)] == [ACCEPTED, DUPLICATE, ACCEPTED, DUPLICATE]


def test_copies_stored_before_and_copies_an_earlier_attempt_kept_count_as_accepted() -> None:
    """The sink's second pass: ``stored`` (the minutes of copies from earlier batches) and ``kept`` (this batch's
    records an earlier attempt stored) are accepted copies the others are judged against."""
    ids = pa.array(["a", "a", "b", "b", "c"])
    minutes = np.array([10, 12, 20, 21, 30])
    every = np.ones(5, dtype=bool)
    assert later_copies(ids, minutes, every).tolist() == [False, False, False, True, False]
    stored = {"a": [11], "c": [40]}
    assert later_copies(ids, minutes, every, stored=stored).tolist() == [True, True, False, True, False]
    kept = np.array([False, False, False, True, False])  # b's second copy was stored by an earlier attempt
    assert later_copies(ids, minutes, every, kept=kept).tolist() == [False, False, False, False, False]


def test_a_copy_behind_the_watermark_is_a_duplicate_and_a_late_event_is_never_the_one_copies_are_judged_by() -> None:
    """Partition 0: a view at 12:00:10, a view at 12:05:00 (the mark moves on), then the first re-sent verbatim (a
    producer replaying after an outage): a duplicate, its event is stored. Partition 1: a view at 12:05:00, then
    one at 12:00:10 (late, no copy of an accepted event), then a copy of that late one on partition 2, on time
    there: accepted (the late one is in late_events, in no aggregate)."""
    first, late = event(7, "2026-11-29T12:00:10Z"), event(8, "2026-11-29T12:00:10Z")
    on = [event(n, "2026-11-29T12:05:00Z") for n in (9, 10)]  # each partition's mark moves on
    rows = classify([(0, 0, first), (0, 1, on[0]), (0, 2, first), (1, 0, on[1]), (1, 1, late), (2, 0, late)])
    assert {key: row["status"] for key, row in rows.items()} == {
        (0, 0): ACCEPTED,
        (0, 1): ACCEPTED,
        (0, 2): DUPLICATE,
        (1, 0): ACCEPTED,
        (1, 1): LATE,
        (2, 0): ACCEPTED,
    }
    assert [rows[(0, 2)]["behind_ms"], rows[(1, 1)]["behind_ms"], rows[(2, 0)]["behind_ms"]] == [260_000, 260_000, 0]


def test_a_resend_of_a_late_event_is_late_again() -> None:
    """A producer re-sending a record that was late (no accepted copy): late again, a second row in late_events
    (keyed by Kafka coordinates), never a duplicate of the late one (README, "Late events")."""
    late = event(8, "2026-11-29T12:00:10Z")
    rows = classify([(0, 0, event(9, "2026-11-29T12:05:00Z")), (0, 1, late), (0, 2, late)])
    assert [rows[(0, i)]["status"] for i in range(3)] == [ACCEPTED, LATE, LATE]


def test_a_copy_further_behind_than_the_lookback_is_late() -> None:
    """The lookup reads the minutes of what it is given: a record more than COPY_LOOKBACK_MS behind its watermark
    is late whatever it copies, so no sender can make a batch read old minutes."""
    first = event(7, "2026-11-29T12:00:10Z")
    rows = classify([(0, 0, first), (0, 1, event(9, "2026-11-29T12:06:00Z")), (0, 2, first)])
    assert rows[(0, 2)]["behind_ms"] == 320_000 > COPY_LOOKBACK_MS
    assert [rows[(0, i)]["status"] for i in range(3)] == [ACCEPTED, ACCEPTED, LATE]


def test_a_batch_of_one_id_repeated_is_judged_in_one_pass() -> None:
    """A hostile batch: 200,000 copies of one id, two to a minute: half are duplicates, in time linear in the
    copies (a set of accepted minutes, not a list of copies)."""
    minutes = np.repeat(np.arange(0, 200_000, 2), 2)
    later = later_copies(pa.array(["x"] * len(minutes)), minutes, np.ones(len(minutes), dtype=bool))
    assert later.tolist() == [False, True] * 100_000


@pytest.mark.parametrize(
    "coordinates",
    [
        [(2, 5), (2, 6), (0, 9), (0, 10), (1, 0)],  # one run per partition, runs in task order (Spark's usual)
        [(0, 9), (1, 0), (0, 10), (2, 5), (2, 6)],  # a partition in two runs
        [(1, 0), (0, 10), (0, 9), (2, 6), (2, 5)],  # runs out of offset order
    ],
    ids=["runs in task order", "a partition in two runs", "offsets out of order"],
)
def test_a_batch_is_classified_in_kafka_order_whatever_order_it_comes_in(coordinates) -> None:
    """The first copy in Kafka order (partition, then offset) is the accepted one, wherever Spark put it."""
    copy = event(7, "2026-11-29T12:00:00Z")
    payloads = {(0, 9): copy, (2, 5): copy, (0, 10): event(8), (1, 0): event(9), (2, 6): event(10)}
    out = classify_records([(p, o, payloads[(p, o)]) for p, o in coordinates])
    assert list(zip(out["kafka_partition"].to_pylist(), out["kafka_offset"].to_pylist(), strict=True)) == sorted(
        coordinates
    )
    assert out["status"].to_pylist() == [ACCEPTED, ACCEPTED, ACCEPTED, DUPLICATE, ACCEPTED]


def test_classification_does_not_depend_on_micro_batch_boundaries() -> None:
    times = ["12:00:00", "12:02:00", "12:00:40", "12:01:31", "12:03:00", "12:02:29", "12:02:31", "12:01:00"]
    records = [(0, i, event(i, f"2026-11-29T{t}Z")) for i, t in enumerate(times)]
    whole = classify(records)
    first, second = records[:3], records[3:]
    part1 = classify(first)
    carried = {0: max(r["mark_time"] for r in part1.values() if r["status"] != DEAD_LETTER)}
    part2 = classify(second, carried)
    split = {**part1, **part2}
    assert {k: r["status"] for k, r in whole.items()} == {k: r["status"] for k, r in split.items()}
    assert sorted(r["status"] for r in whole.values()) == sorted([ACCEPTED] * 5 + [LATE] * 3)


def test_every_record_gets_exactly_one_status_and_the_right_one() -> None:
    """Invalid records among valid ones in one batch: each record once, with its own status."""
    records = [(0, i, payload) for i, (payload, _) in enumerate(INVALID)] + [(1, i, event(i)) for i in range(5)]
    rows = classify(records)
    expected = {(0, i): DEAD_LETTER for i in range(len(INVALID))} | {(1, i): ACCEPTED for i in range(5)}
    assert {key: row["status"] for key, row in rows.items()} == expected
    assert all(row["status"] in STATUSES for row in rows.values())


def test_an_empty_batch_classifies_to_an_empty_table() -> None:
    """Spark runs a micro-batch with no records when the topic is empty at the start."""
    out = classify_records([])
    assert out.num_rows == 0
    assert "status" in out.column_names


def test_dead_letters_past_the_budget_keep_a_short_payload_in_row_order() -> None:
    big, key = b"v" * 2000, b"k" * 100
    batch = pa.record_batch(
        {
            "raw": pa.array([big, None, big, big, big], pa.binary()),  # None: a valid record, nothing kept
            "raw_key": pa.array([key, None, None, key, None], pa.binary()),
            "kafka_offset": pa.array(range(5), pa.int64()),
        }
    )
    bounded, held = bound_raw(batch, budget=4200)  # the first two dead letters fit (2,100 + 2,000)
    assert [len(v) if v else None for v in bounded.column("raw").to_pylist()] == [2000, None, 2000, 1024, 1024]
    assert [len(v) if v else None for v in bounded.column("raw_key").to_pylist()] == [100, None, None, 100, None]
    assert held == 2100 + 2000 + 1124 + 1024
    assert bounded.column("kafka_offset").equals(batch.column("kafka_offset"))
    untouched, held = bound_raw(batch, budget=10_000)
    assert untouched is batch
    assert held == 8200
    _, held = bound_raw(batch, budget=-5)  # a task already past its budget: every payload short
    assert held == 4 * 1024 + 2 * 100
