"""The generator as a whole: determinism, send times, the API, and the truth it keeps of its own records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from rtap.contract import format_event_time
from rtap.generate import ClickstreamGenerator, GroundTruth
from rtap.settings import GeneratorSettings
from tests.support.clickstream import CLEAN, DELAY_S, PARTITIONS, T0, Run, run

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def test_same_seed_and_times_give_the_same_bytes() -> None:
    first, second = run(3_000), run(3_000)
    assert first.records == second.records
    assert first.truth.to_json() == second.truth.to_json()


def test_other_seed_or_start_gives_other_records() -> None:
    base = [r.value for r in run(500).records]
    assert base != [r.value for r in run(500, seed=7).records]
    later = run(500, start=T0 + timedelta(hours=1)).records
    ids = {orjson.loads(v)["event_id"] for v in base[:100] if v.endswith(b"}")}
    assert ids.isdisjoint(orjson.loads(r.value)["event_id"] for r in later[:100] if r.value.endswith(b"}"))


def test_normal_events_carry_the_send_time_in_canonical_form() -> None:
    generated = run(200, step_ms=7.5, **CLEAN)
    sends = [T0 + timedelta(milliseconds=7.5 * i) for i in range(200)]
    assert [orjson.loads(r.value)["event_time"] for r in generated.records] == [format_event_time(t) for t in sends]


def test_truth_equals_classifying_the_records_one_by_one(dirty: Run) -> None:
    """The generator's fast accounting (with its memory hints) against the general, validating path."""
    reference = GroundTruth(partitions=PARTITIONS, watermark_delay_s=DELAY_S)
    for record in dirty.records:
        reference.add_record(record.partition, record.value)
    assert reference.to_json() == dirty.truth.to_json()


def test_daily_curve() -> None:
    flat = ClickstreamGenerator(GeneratorSettings(), partitions=1, watermark_delay_s=0)
    assert flat.rate_multiplier(T0) == 1.0
    curved = ClickstreamGenerator(GeneratorSettings(daily_curve=True), partitions=1, watermark_delay_s=0)
    day = [curved.rate_multiplier(T0 + timedelta(minutes=m)) for m in range(0, 24 * 60, 10)]
    assert sum(day) / len(day) == pytest.approx(1.0, abs=1e-9)
    assert min(day) > 0
    assert curved.rate_multiplier(T0.replace(hour=19)) == max(day)


def test_naive_times_are_refused() -> None:
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
    one_by_one = [r for ms in times for r in single.generate(EPOCH + timedelta(milliseconds=ms))]

    records = list(zip(*block, strict=True))
    assert records == [record for part in parts for record in zip(*part, strict=True)]
    assert records == [tuple(record) for record in one_by_one]
    assert whole.truth.to_json() == split.truth.to_json() == single.truth.to_json()
    assert whole.truth.produced == len(records)
