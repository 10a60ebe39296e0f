"""Ground truth arithmetic: a hand-checked sequence, a naive reference model, persistence and merging."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtap.contract import format_event_time
from rtap.contract.vocabulary import ACCEPTED, COPY_LOOKBACK_MS, DEAD_LETTER, DUPLICATE, LATE
from rtap.errors import ValidationFailedError
from rtap.generate import EventStats, GroundTruth, PageViews
from rtap.generate import minutes as minutes_module
from rtap.generate.truth import EventBatch

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
MINUTE = T0
NEXT_MINUTE = T0 + timedelta(minutes=1)


def event(event_id: int, seconds: float, event_type: str = "page_view", **fields: Any) -> bytes:
    record = {
        "event_id": f"00000000-0000-4000-8000-{event_id:012d}",
        "event_type": event_type,
        "event_time": format_event_time(T0 + timedelta(seconds=seconds)),
        "user_id": fields.pop("user", "u1"),
        "session_id": fields.pop("session", "s1"),
        "page_url": fields.pop("page", "https://shop.example/a"),
        **fields,
    }
    return orjson.dumps(record)


def purchase(event_id: int, seconds: float, price: float, quantity: int, **fields: Any) -> bytes:
    extra = {"product_id": "sku-1", "price": price, "quantity": quantity, "order_id": "o1"}
    return event(event_id, seconds, "purchase", **{**extra, **fields})


def hand_checked() -> tuple[GroundTruth, list[str]]:
    """Two partitions, 30 s watermark delay; the expected status of each record is in the comment."""
    truth = GroundTruth(partitions=2, watermark_delay_s=30)
    statuses = [
        truth.add_record(0, event(1, 10)),  # accepted; p0 high water 12:00:10
        truth.add_record(0, purchase(2, 50, 10.5, 2, user="u2", session="s2")),  # accepted; p0 high water :50
        truth.add_record(0, event(3, 15)),  # late: :15 < :50 - 30 s
        truth.add_record(1, event(4, 5, session="s3")),  # accepted: p1 has its own watermark
        truth.add_record(0, purchase(2, 50, 10.5, 2, user="u2", session="s2")),  # duplicate of record 2
        truth.add_record(1, b'{"event_id": "00000000-0000-4000-8000-'),  # dead letter: broken JSON
        truth.add_record(0, event(5, 20, "product_view")),  # on time: exactly at the watermark
        truth.add_record(0, purchase(6, 62, 5.25, 1, user="u2", session="s2")),  # accepted, next minute
        truth.add_record(
            1, event(7, 1, "checkout", page="https://shop.example/checkout", campaign="x")
        ),  # unknown field: ignored
    ]
    return truth, statuses


def test_hand_checked_sequence() -> None:
    truth, statuses = hand_checked()
    assert statuses == [ACCEPTED, ACCEPTED, LATE, ACCEPTED, DUPLICATE, DEAD_LETTER, ACCEPTED, ACCEPTED, ACCEPTED]
    totals = truth.totals()
    assert (totals.produced, totals.accepted, totals.late, totals.duplicates, totals.dead_letters) == (9, 6, 1, 1, 1)
    assert totals.sessions == 3
    assert truth.page_views_1m() == {(MINUTE, "https://shop.example/a"): PageViews(views=3, unique_users=1)}
    assert truth.events_1m() == {
        (MINUTE, "checkout"): EventStats(1, 1, 0, Decimal(0)),
        (MINUTE, "page_view"): EventStats(2, 1, 0, Decimal(0)),
        (MINUTE, "product_view"): EventStats(1, 1, 0, Decimal(0)),
        (MINUTE, "purchase"): EventStats(1, 1, 1, Decimal("21.00")),
        (NEXT_MINUTE, "purchase"): EventStats(1, 1, 1, Decimal("5.25")),
    }


def test_json_round_trip_is_exact() -> None:
    truth, _ = hand_checked()
    again = GroundTruth.from_json(truth.to_json())
    assert again.totals() == truth.totals()
    assert again.page_views_1m() == truth.page_views_1m()
    assert again.events_1m() == truth.events_1m()
    assert again.to_json() == truth.to_json()
    document = orjson.loads(truth.to_json())
    assert document["events_1m"][3] == ["2026-11-29T12:00:00Z", "purchase", 1, 1, 1, "21.000000"]


@pytest.mark.parametrize("payload", [b"{", b"[]", b'{"format": 99}', b'{"format": 1}'])
def test_from_json_refuses_other_documents(payload: bytes) -> None:
    with pytest.raises(ValidationFailedError):
        GroundTruth.from_json(payload)


def test_merge_of_runs_in_separate_minutes_adds_up() -> None:
    first, second = GroundTruth(partitions=2, watermark_delay_s=30), GroundTruth(partitions=2, watermark_delay_s=30)
    first.add_record(0, event(1, 10))
    first.add_record(1, event(2, 20, user="u2"))
    second.add_record(0, event(3, 70, session="s9"))
    second.add_record(0, b"not json")
    merged = GroundTruth.merge_all([first, GroundTruth.from_json(second.to_json())])
    assert (merged.produced, merged.accepted, merged.dead_letters, merged.sessions, merged.runs) == (4, 3, 1, 2, 2)
    assert merged.page_views_1m() == {
        (MINUTE, "https://shop.example/a"): PageViews(2, 2),
        (NEXT_MINUTE, "https://shop.example/a"): PageViews(1, 1),
    }


def test_merge_refuses_runs_sharing_a_minute() -> None:
    first, second = GroundTruth(partitions=1, watermark_delay_s=30), GroundTruth(partitions=1, watermark_delay_s=30)
    first.add_record(0, event(1, 10))
    second.add_record(0, event(2, 40))
    with pytest.raises(ValidationFailedError, match="distinct users"):
        first.merge(second)


def test_merge_refuses_a_later_run_behind_the_watermark() -> None:
    first, second = GroundTruth(partitions=1, watermark_delay_s=30), GroundTruth(partitions=1, watermark_delay_s=30)
    first.add_record(0, event(1, 170))
    second.add_record(0, event(2, 100))  # on time alone, late behind the first run's 12:02:50
    with pytest.raises(ValidationFailedError, match="watermark"):
        first.merge(second)


def test_merge_refuses_other_topics() -> None:
    with pytest.raises(ValidationFailedError, match="partitions"):
        GroundTruth(partitions=1, watermark_delay_s=30).merge(GroundTruth(partitions=2, watermark_delay_s=30))


def test_a_copy_behind_the_watermark_is_a_duplicate_and_a_late_record_is_never_remembered() -> None:
    truth = GroundTruth(partitions=2, watermark_delay_s=30)
    assert truth.add_record(0, event(1, 10)) == ACCEPTED
    assert truth.add_record(0, event(2, 300)) == ACCEPTED  # partition 0 moves on
    assert truth.add_record(0, event(1, 10)) == DUPLICATE  # a replay of what was stored: not late
    assert truth.add_record(1, event(3, 300)) == ACCEPTED
    assert truth.add_record(1, event(4, 10)) == LATE
    assert truth.add_record(1, event(4, 10)) == LATE  # a copy of a late record: late too
    assert truth.add_record(0, event(5, 1_000)) == ACCEPTED  # partition 0 moves past the lookback
    assert truth.add_record(0, event(1, 10)) == LATE  # too far behind to be judged a copy
    totals = truth.totals()
    assert (totals.accepted, totals.duplicates, totals.late) == (4, 1, 3)


def test_id_hint_forgets_ids_without_changing_answers() -> None:
    truth = GroundTruth(partitions=1, watermark_delay_s=30)
    args = (0, 1_000, "e1", "page_view", "u1", "s1", "https://shop.example/a", None, 0)
    assert truth.add_event(*args, True) == ACCEPTED
    assert truth.add_event(*args, False) == DUPLICATE  # the announced copy, after which the id is forgotten
    assert truth._ids == set()
    truth.end_session("s1")
    assert truth.sessions == 1


# -- a naive model of the rules, compared with GroundTruth on random streams ---------------------------


def naive(records: list[tuple[int, int, str, str, str]], partitions: int, delay_ms: int) -> dict[str, Any]:
    """Straight from the rules, with no incremental state: statuses, and users per (minute, event_type)."""
    statuses: list[str] = []
    accepted: list[tuple[int, int, str, str, str]] = []
    for index, (partition, time_ms, event_id, _, _) in enumerate(records):
        before = [r[1] for r in records[:index] if r[0] == partition]
        stale = before and time_ms < max(before) - delay_ms - COPY_LOOKBACK_MS
        if event_id in {r[2] for r in accepted} and not stale:
            statuses.append(DUPLICATE)  # a copy of an accepted event, on time or not too far behind
        elif before and time_ms < max(before) - delay_ms:
            statuses.append(LATE)
        else:
            statuses.append(ACCEPTED)
            accepted.append(records[index])
    users: dict[tuple[int, str], set[str]] = {}
    for _, time_ms, _, event_type, user in accepted:
        users.setdefault((time_ms // 60_000, event_type), set()).add(user)
    return {"statuses": statuses, "users": {key: len(value) for key, value in users.items()}}


records_strategy = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.integers(0, 400_000),
        st.sampled_from(["e1", "e2", "e3", "e4", "e5", "e6"]),
        st.sampled_from(["page_view", "search", "purchase"]),
        st.sampled_from(["u1", "u2", "u3"]),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(records_strategy, st.sampled_from([0, 1_000, 30_000]))
def test_truth_agrees_with_the_naive_rules(records: list[tuple[int, int, str, str, str]], delay_ms: int) -> None:
    truth = GroundTruth(partitions=3, watermark_delay_s=delay_ms / 1000)
    statuses = [
        truth.add_event(p, t, event_id, event_type, user, "s", "https://shop.example/a", None, 0)
        for p, t, event_id, event_type, user in records
    ]
    expected = naive(records, 3, delay_ms)
    assert statuses == expected["statuses"]
    assert truth.produced == truth.accepted + truth.duplicates + truth.late + truth.dead_letters == len(records)
    observed = {
        (int(minute.timestamp()) // 60, event_type): row.users
        for (minute, event_type), row in truth.events_1m().items()
    }
    assert observed == expected["users"]


@settings(max_examples=100, deadline=None)
@given(records_strategy, st.sampled_from([0, 1_000, 30_000]))
def test_a_batch_equals_its_records_one_by_one(records: list[tuple[int, int, str, str, str]], delay_ms: int) -> None:
    """add_events (with counting and deduplication forced to run often) against add_event per record."""
    one_by_one = GroundTruth(partitions=3, watermark_delay_s=delay_ms / 1000)
    for p, t, event_id, event_type, user in records:
        revenue = 1_500_000 if event_type == "purchase" else 0
        one_by_one.add_event(p, t, event_id, event_type, user, f"s-{user}", f"/{t % 3}", f"o-{t}", revenue)
    batched = GroundTruth(partitions=3, watermark_delay_s=delay_ms / 1000)
    batch = EventBatch()
    for position, (p, t, event_id, event_type, user) in enumerate(records):
        batch.partitions.append(p)
        batch.times_ms.append(t)
        batch.type_codes.append(batched.type_code(event_type))
        batch.page_codes.append(batched.page_code(f"/{t % 3}") if event_type == "page_view" else -1)
        batch.user_codes.append(batched.user_code(user))
        batch.session_ids.append(f"s-{user}")
        batch.ids[position] = (event_id, True)
        if event_type == "purchase":
            batch.purchases[position] = (f"o-{t}", 1_500_000)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(minutes_module, "COMPACT_PAIRS", 2)
        patch.setattr(minutes_module, "COUNT_EVERY", 3)
        batched.add_events(batch)
    assert batched.to_json() == one_by_one.to_json()
