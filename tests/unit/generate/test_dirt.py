"""The dirt: malformed records of every kind, late events and re-sent copies, at the configured rates."""

from __future__ import annotations

from collections import Counter

import pytest

from rtap.contract import validate_event
from rtap.errors import ConfigError, ContractError
from rtap.generate import ClickstreamGenerator, kafka_partition
from rtap.generate import dirt as dirt_module
from rtap.settings import GeneratorSettings
from tests.support.clickstream import PARTITIONS, Run


def test_every_record_is_valid_or_a_dead_letter_of_each_kind(dirty: Run) -> None:
    reasons: Counter[str] = Counter()
    valid = 0
    for record in dirty.records:
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
    assert set(reasons) == set(dirt_module.MALFORMED_KINDS)
    assert max(reasons.values()) - min(reasons.values()) <= 1  # spread evenly
    assert valid == dirty.truth.produced - dirty.truth.dead_letters


def test_dirt_rates_match_the_settings(dirty: Run) -> None:
    truth = dirty.truth
    assert truth.produced == len(dirty.records)
    for observed, configured in ((truth.duplicates, 0.04), (truth.late, 0.03), (truth.dead_letters, 0.04)):
        assert observed / truth.produced == pytest.approx(configured, rel=0.12)


def test_duplicates_are_byte_copies_a_few_records_later(dirty: Run) -> None:
    first_seen: dict[bytes, int] = {}
    lags = []
    for index, record in enumerate(dirty.records):
        if record.value in first_seen:
            lags.append(index - first_seen[record.value])
        else:
            first_seen[record.value] = index
    assert len(lags) >= dirty.truth.duplicates
    assert min(lags) >= 1
    assert max(lags) <= 2 * dirt_module.DUPLICATE_MAX_LAG


def test_impossible_rates_are_refused() -> None:
    with pytest.raises(ConfigError, match="no room"):
        ClickstreamGenerator(
            GeneratorSettings(duplicate_rate=0.5, malformed_rate=0.3), partitions=1, watermark_delay_s=0
        )
