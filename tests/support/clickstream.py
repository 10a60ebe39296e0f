"""Generator runs for the generate tests: a generator and the records it made, one send at a time.

Several test modules ask the same questions of one run (its dirt, funnel, visitors, ids), so the runs of
50k sends are fixtures of ``tests/unit/generate/conftest.py``, made once per session from :func:`run`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from rtap.contract import validate_event
from rtap.errors import ContractError
from rtap.generate import ClickstreamGenerator, GeneratedRecord, GroundTruth
from rtap.settings import GeneratorSettings

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
PARTITIONS = 6
DELAY_S = 30.0
CLEAN: dict[str, Any] = {"duplicate_rate": 0.0, "late_rate": 0.0, "malformed_rate": 0.0, "bot_share": 0.0}
# The dirty run: dirt rates raised so 50k sends give tight estimates.
DIRTY: dict[str, Any] = {"duplicate_rate": 0.04, "late_rate": 0.03, "malformed_rate": 0.04, "bot_share": 0.05}


class Run(NamedTuple):
    generator: ClickstreamGenerator
    records: list[GeneratedRecord]

    @property
    def truth(self) -> GroundTruth:
        return self.generator.truth


def run(sends: int, step_ms: float = 20, start: datetime = T0, **overrides: Any) -> Run:
    """``sends`` sends ``step_ms`` apart through :meth:`ClickstreamGenerator.generate`, 1,000 users by default."""
    settings = GeneratorSettings(**{"users": 1_000, **overrides})
    generator = ClickstreamGenerator(settings, partitions=PARTITIONS, watermark_delay_s=DELAY_S)
    records = [
        record for i in range(sends) for record in generator.generate(start + timedelta(milliseconds=step_ms * i))
    ]
    return Run(generator, records)


def parsed(records: list[GeneratedRecord]) -> list[dict[str, Any]]:
    """The events of ``records``, every one of which must be valid."""
    return [validate_event(record.value) for record in records]


def try_parse(value: bytes) -> dict[str, Any] | None:
    """The event of a record, or None for a dead letter."""
    try:
        return validate_event(value)
    except ContractError:
        return None
