"""The job's validator: its fast path agrees with its exact rules on every record, and it refuses a schema it
cannot check faithfully (the agreement with fastjsonschema is tests/unit/contract/test_validator_parity.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rtap.contract.validator as validator_module
from rtap.contract.validator import RecordValidator
from rtap.errors import ContractError
from tests.support.strategies import records

LIMITS: dict[str, Any] = {"max_record_bytes": 4096, "max_future_skew_s": 3600.0}
NOW_MS = 1_796_000_000_000


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batch=st.lists(st.one_of(records(), st.binary(max_size=40)), min_size=1, max_size=80))
def test_the_fast_path_only_shortens_the_way_to_the_same_verdicts_and_values(batch) -> None:
    payloads = [p if isinstance(p, bytes) else orjson.dumps(p) for p in batch]
    times = np.full(len(payloads), NOW_MS, dtype=np.int64)
    fast = RecordValidator(**LIMITS).validate(payloads, times)
    exact = RecordValidator(**LIMITS, fast_path=False).validate(payloads, times)
    assert fast.errors.to_pylist() == exact.errors.to_pylist()
    for name, column in fast.columns.items():
        assert column.equals(exact.columns[name]), name


def test_a_keyword_the_validator_cannot_check_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    schema = {
        "type": "object",
        "required": ["event_id"],
        "properties": {"event_id": {"type": "string", "multipleOf": 2}},
    }
    monkeypatch.setattr(validator_module, "load_format_schema", lambda *_: schema)
    with pytest.raises(ContractError, match="does not support"):
        RecordValidator(**LIMITS)
