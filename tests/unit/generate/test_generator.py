"""The generator: determinism, validity, dirt rates, funnel, popularity, bots, and truth consistency."""

from __future__ import annotations

import math
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest

from rtap.contract import format_event_time, validate_event
from rtap.errors import ConfigError, ContractError
from rtap.generate import ClickstreamGenerator, GeneratedRecord, GroundTruth, kafka_partition
from rtap.generate import generator as model
from rtap.settings import GeneratorSettings

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
PARTITIONS = 6
DELAY_S = 30.0
CLEAN: dict[str, Any] = {"duplicate_rate": 0.0, "late_rate": 0.0, "malformed_rate": 0.0, "bot_share": 0.0}


def run(sends: int, step_ms: float = 20, start: datetime = T0, **overrides: Any) -> ClickstreamGenerator:
    settings = GeneratorSettings(**{"users": 1_000, **overrides})
    generator = ClickstreamGenerator(settings, partitions=PARTITIONS, watermark_delay_s=DELAY_S)
    generator.records = [  # type: ignore[attr-defined]
        record for i in range(sends) for record in generator.generate(start + timedelta(milliseconds=step_ms * i))
    ]
    return generator


def records_of(generator: ClickstreamGenerator) -> list[GeneratedRecord]:
    records: list[GeneratedRecord] = generator.records  # type: ignore[attr-defined]
    return records


@pytest.fixture(scope="module")
def dirty() -> ClickstreamGenerator:
    """Default shop, dirt rates raised so 50k sends give tight estimates."""
    return run(50_000, duplicate_rate=0.04, late_rate=0.03, malformed_rate=0.04, bot_share=0.05)


@pytest.fixture(scope="module")
def clean() -> ClickstreamGenerator:
    return run(50_000, **CLEAN)


def parsed(records: list[GeneratedRecord]) -> list[dict[str, Any]]:
    return [validate_event(record.value) for record in records]


def test_same_seed_and_times_give_the_same_bytes() -> None:
    first, second = run(3_000), run(3_000)
    assert records_of(first) == records_of(second)
    assert first.truth.to_json() == second.truth.to_json()


def test_other_seed_or_start_gives_other_records() -> None:
    base = [r.value for r in records_of(run(500))]
    assert base != [r.value for r in records_of(run(500, seed=7))]
    later = records_of(run(500, start=T0 + timedelta(hours=1)))
    ids = {orjson.loads(v)["event_id"] for v in base[:100] if v.endswith(b"}")}
    assert ids.isdisjoint(orjson.loads(r.value)["event_id"] for r in later[:100] if r.value.endswith(b"}"))


def test_every_record_is_valid_or_a_dead_letter_of_each_kind(dirty: ClickstreamGenerator) -> None:
    reasons: Counter[str] = Counter()
    valid = 0
    for record in records_of(dirty):
        assert record.partition == kafka_partition(record.key, PARTITIONS)
        try:
            event = validate_event(record.value)
        except ContractError as error:
            text = str(error)
            kind = (
                "broken_json"
                if "invalid JSON" in text
                else "unknown_event_type"
                if error.field == "event_type" and "one of" in text
                else "missing_field"
                if "must contain" in text
                else "wrong_type"
                if "must be" in text
                else text
            )
            reasons[kind] += 1
            continue
        valid += 1
        assert record.key == event["session_id"].encode()
    assert sum(reasons.values()) == dirty.truth.dead_letters
    assert set(reasons) == set(model.MALFORMED_KINDS)
    assert max(reasons.values()) - min(reasons.values()) <= 1  # spread evenly
    assert valid == dirty.truth.produced - dirty.truth.dead_letters


def test_normal_events_carry_the_send_time_in_canonical_form() -> None:
    generator = run(200, step_ms=7.5, **CLEAN)
    sends = [T0 + timedelta(milliseconds=7.5 * i) for i in range(200)]
    assert [orjson.loads(r.value)["event_time"] for r in records_of(generator)] == [format_event_time(t) for t in sends]


def test_dirt_rates_match_the_settings(dirty: ClickstreamGenerator) -> None:
    truth = dirty.truth
    assert truth.produced == len(records_of(dirty))
    for observed, configured in ((truth.duplicates, 0.04), (truth.late, 0.03), (truth.dead_letters, 0.04)):
        assert observed / truth.produced == pytest.approx(configured, rel=0.12)


def test_duplicates_are_byte_copies_a_few_records_later(dirty: ClickstreamGenerator) -> None:
    records = records_of(dirty)
    first_seen: dict[bytes, int] = {}
    lags = []
    for index, record in enumerate(records):
        if record.value in first_seen:
            lags.append(index - first_seen[record.value])
        else:
            first_seen[record.value] = index
    assert len(lags) >= dirty.truth.duplicates
    assert min(lags) >= 1
    assert max(lags) <= 2 * model.DUPLICATE_MAX_LAG


def test_truth_equals_classifying_the_records_one_by_one(dirty: ClickstreamGenerator) -> None:
    """The generator's fast accounting (with its memory hints) against the general, validating path."""
    reference = GroundTruth(partitions=PARTITIONS, watermark_delay_s=DELAY_S)
    for record in records_of(dirty):
        reference.add_record(record.partition, record.value)
    assert reference.to_json() == dirty.truth.to_json()


def sessions_of(generator: ClickstreamGenerator) -> list[list[str]]:
    """Event types per session, for sessions that started in the first half (so nearly all are over)."""
    events = parsed(records_of(generator))
    by_session: dict[str, list[str]] = defaultdict(list)
    started: dict[str, int] = {}
    for index, event in enumerate(events):
        started.setdefault(event["session_id"], index)
        by_session[event["session_id"]].append(event["event_type"])
    return [types for session, types in by_session.items() if started[session] < len(events) // 2]


def transitions(sessions: list[list[str]]) -> dict[str, Counter[str]]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for types in sessions:
        for current, following in zip(types, [*types[1:], "end"], strict=True):
            counts[current][following] += 1
    return counts


def share(counter: Counter[str], *keys: str) -> float:
    return sum(counter[key] for key in keys) / sum(counter.values())


def test_sessions_follow_the_funnel(clean: ClickstreamGenerator) -> None:
    sessions = sessions_of(clean)
    assert all(types[0] == "page_view" for types in sessions)
    bounced = sum(1 for types in sessions if len(types) == 1) / len(sessions)
    assert bounced == pytest.approx(model.BOUNCE_RATE, abs=0.03)
    after = transitions(sessions)
    assert share(after["checkout"], "purchase") == pytest.approx(model.CHECKOUT_TO_PURCHASE, abs=0.05)
    assert share(after["search"], "end") == pytest.approx(model.SEARCH_ABANDON, abs=0.03)
    product_to_cart = 1 - model.PRODUCT_LEAVE - model.PRODUCT_TO_PRODUCT - model.PRODUCT_TO_PAGE
    assert share(after["product_view"], "add_to_cart") == pytest.approx(product_to_cart, abs=0.03)
    assert share(after["add_to_cart"], "remove_from_cart") == pytest.approx(model.CART_REMOVE, abs=0.02)
    assert share(after["add_to_cart"], "checkout") == pytest.approx(model.CART_CHECKOUT, abs=0.04)
    # Each step of the funnel loses visitors.
    reached = Counter(step for types in sessions for step in set(types))
    assert reached["page_view"] > reached["product_view"] > reached["add_to_cart"] > reached["checkout"]
    assert reached["checkout"] > reached["purchase"] > 0


def test_purchases_are_complete_orders(clean: ClickstreamGenerator) -> None:
    purchases = [e for e in parsed(records_of(clean)) if e["event_type"] == "purchase"]
    assert purchases
    for event in purchases:
        assert event["price"] == event["price"].quantize(Decimal("0.01"))
        assert event["price"] > 0
        assert event["quantity"] >= 1
        assert event["product_id"]
        assert event["order_id"]
    lines = Counter(e["order_id"] for e in purchases)
    assert max(lines.values()) > 1  # a cart of several products is one order of several lines
    sessions_per_order = {e["order_id"]: e["session_id"] for e in purchases}
    assert all(sessions_per_order[e["order_id"]] == e["session_id"] for e in purchases)


def test_clients_have_devices_countries_and_both_ip_versions(clean: ClickstreamGenerator) -> None:
    events = parsed(records_of(clean))
    assert {e["device"] for e in events} == {"desktop", "mobile", "tablet"}
    assert len({e["country"] for e in events}) > 5
    assert any(":" in e["ip_address"] for e in events)
    assert any("." in e["ip_address"] for e in events)
    landing_referrers = Counter(
        e["referrer"] for e in events if e["referrer"] is None or "shop.example" not in e["referrer"]
    )
    assert landing_referrers[None] > 0
    assert len(landing_referrers) > 3


def test_pages_are_zipf_popular(clean: ClickstreamGenerator) -> None:
    views = Counter(e["page_url"] for e in parsed(records_of(clean)) if e["event_type"] == "page_view")
    ranks = clean.catalog.pages
    s, n = clean.settings.zipf_s, len(ranks)
    harmonic = sum(1 / k**s for k in range(1, n + 1))
    total = sum(views.values())
    assert views[ranks[0]] / total == pytest.approx(1 / harmonic, rel=0.08)
    # Rank-frequency slope on a log-log scale over the top 20 ranks: -s.
    xs = [math.log(rank) for rank in range(1, 21)]
    ys = [math.log(views[ranks[rank - 1]]) for rank in range(1, 21)]
    mean_x, mean_y = sum(xs) / 20, sum(ys) / 20
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum((x - mean_x) ** 2 for x in xs)
    assert slope == pytest.approx(-s, abs=0.15)


def test_bots_click_much_faster_than_humans_from_one_ip(dirty: ClickstreamGenerator) -> None:
    events = [e for e in (_try_parse(r.value) for r in records_of(dirty)) if e is not None]
    per_user = Counter(e["user_id"] for e in events)
    bots = dirty.bot_user_ids
    assert bots
    bot_rate = sum(per_user[u] for u in bots) / len(bots)
    humans = [u for u in per_user if u not in bots]
    human_rate = sum(per_user[u] for u in humans) / len(humans)
    assert bot_rate > 20 * human_rate
    for bot in bots:
        assert len({e["ip_address"] for e in events if e["user_id"] == bot}) == 1
    assert sum(per_user[u] for u in bots) / len(events) == pytest.approx(0.05, rel=0.15)


def _try_parse(value: bytes) -> dict[str, Any] | None:
    try:
        return validate_event(value)
    except ContractError:
        return None


def test_daily_curve() -> None:
    flat = ClickstreamGenerator(GeneratorSettings(), partitions=1, watermark_delay_s=0)
    assert flat.rate_multiplier(T0) == 1.0
    curved = ClickstreamGenerator(GeneratorSettings(daily_curve=True), partitions=1, watermark_delay_s=0)
    day = [curved.rate_multiplier(T0 + timedelta(minutes=m)) for m in range(0, 24 * 60, 10)]
    assert sum(day) / len(day) == pytest.approx(1.0, abs=1e-9)
    assert min(day) > 0
    assert curved.rate_multiplier(T0.replace(hour=19)) == max(day)


def test_impossible_rates_and_naive_times_are_refused() -> None:
    with pytest.raises(ConfigError, match="no room"):
        ClickstreamGenerator(
            GeneratorSettings(duplicate_rate=0.5, malformed_rate=0.3), partitions=1, watermark_delay_s=0
        )
    generator = ClickstreamGenerator(GeneratorSettings(), partitions=1, watermark_delay_s=0)
    with pytest.raises(ValueError, match="timezone"):
        generator.generate(datetime(2026, 1, 1))


def test_records_do_not_depend_on_how_sends_are_split_into_blocks() -> None:
    settings = GeneratorSettings(users=300, duplicate_rate=0.05, late_rate=0.05, malformed_rate=0.05, bot_share=0.05)
    start_ms = round(T0.timestamp() * 1000)
    times = [start_ms + 20 * i for i in range(6_000)]

    def fresh() -> ClickstreamGenerator:
        return ClickstreamGenerator(settings, partitions=PARTITIONS, watermark_delay_s=DELAY_S)

    whole = fresh()
    block = whole.generate_block(times)
    split = fresh()
    parts = [split.generate_block(times[a:b]) for a, b in ((0, 1), (1, 1000), (1000, 1000), (1000, 1001), (1001, 6000))]
    single = fresh()
    one_by_one = [r for ms in times for r in single.generate(model._EPOCH + timedelta(milliseconds=ms))]

    records = list(zip(*block, strict=True))
    assert records == [record for part in parts for record in zip(*part, strict=True)]
    assert records == [tuple(record) for record in one_by_one]
    assert whole.truth.to_json() == split.truth.to_json() == single.truth.to_json()
    assert whole.truth.produced == len(records)


def test_ids_are_distinct_version_4_uuids(dirty: ClickstreamGenerator) -> None:
    valid = {r.value: e for r in records_of(dirty) if (e := _try_parse(r.value)) is not None}
    event_ids = {e["event_id"] for e in valid.values()}
    session_ids = {e["session_id"] for e in valid.values()}
    order_ids = {e["order_id"] for e in valid.values() if e["order_id"] is not None}
    assert len(event_ids) == len(valid)  # only byte-identical copies share an id
    assert order_ids
    assert len(event_ids | session_ids | order_ids) == len(event_ids) + len(session_ids) + len(order_ids)
    for text in event_ids | session_ids | order_ids:
        parsed_id = uuid.UUID(text)
        assert (str(parsed_id), parsed_id.version, parsed_id.variant) == (text, 4, uuid.RFC_4122)
