"""The dirt a real stream carries, at the configured rates: malformed records, late events, re-sent copies.

The rates in the settings are shares of all records sent, and the pipeline must sort each record into
dead letters, late events or counted duplicates exactly (the truth predicts which). Per send, one draw
decides whether the send is clean, malformed or late, and another whether a byte-identical copy of it
follows 1..:data:`DUPLICATE_MAX_LAG` sends later (a producer's retry, as Kafka sees it).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import orjson

from rtap.contract import REQUIRED_FIELDS
from rtap.errors import ConfigError
from rtap.settings import GeneratorSettings

DUPLICATE_MAX_LAG = 16  # a re-sent copy follows its original 1..16 sends later
MALFORMED_KINDS = ("broken_json", "missing_field", "wrong_type", "unknown_event_type")
UNKNOWN_EVENT_TYPES = ("wishlist_add", "hover", "PageView")
# What a send's dirt draw decided.
CLEAN, MALFORMED, LATE = range(3)


class DirtRates:
    """The settings' rates as probabilities per send, and the draws that apply them.

    A copy is an extra record, so per send a copy follows with probability duplicate / (1 - duplicate)
    (per valid send: divided by the valid share, as malformed records are not re-sent), and malformed and
    late sends are scaled by 1 / (1 - duplicate).
    """

    def __init__(self, settings: GeneratorSettings) -> None:
        duplicate, late, malformed = settings.duplicate_rate, settings.late_rate, settings.malformed_rate
        if duplicate + late + malformed >= 1 or 2 * duplicate + malformed > 1:
            raise ConfigError(
                "duplicate_rate, late_rate and malformed_rate leave no room for valid events "
                f"({duplicate}, {late}, {malformed})"
            )
        self.p_malformed = malformed / (1 - duplicate)
        self.p_late_or_malformed = (malformed + late) / (1 - duplicate)
        self.p_copy = duplicate / (1 - duplicate) / (1 - self.p_malformed) if duplicate else 0.0
        self.late_by_ms = int(settings.late_by_seconds * 1000)

    def draw(self, rng: np.random.Generator, n: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """For ``n`` sends: what each is (CLEAN, MALFORMED or LATE), and its copy's lag in sends (0: none)."""
        dirt_draw = rng.random(n)
        dirt = np.where(
            dirt_draw < self.p_malformed,
            MALFORMED,
            np.where(dirt_draw < self.p_late_or_malformed, LATE, CLEAN),
        )
        lag = np.where(rng.random(n) < self.p_copy, rng.integers(1, DUPLICATE_MAX_LAG + 1, size=n), 0)
        return dirt, lag


class Copy(NamedTuple):
    """A record to send again a few sends later, with what the truth needs to classify it."""

    key: bytes
    value: bytes
    partition: int
    time_ms: int
    type_code: int
    page_code: int
    user_code: int
    session_id: str
    event_id: str
    order: tuple[str, int] | None


class Malformer:
    """Turns valid records into records that break the contract, cycling evenly through :data:`MALFORMED_KINDS`.

    Each kind in turn, and within a kind each variant in turn (which required field is missing, which field
    has the wrong type, which unknown event type), so a short run already shows the pipeline every reason.
    """

    def __init__(self) -> None:
        self._sent = 0

    def malform(self, valid: bytes, ms: int) -> bytes:
        """``valid`` (a record of send time ``ms``) broken in the next way."""
        count = self._sent
        self._sent += 1
        kind = MALFORMED_KINDS[count % len(MALFORMED_KINDS)]
        round_ = count // len(MALFORMED_KINDS)
        if kind == "broken_json":  # cut mid-object: a truncated send
            return valid[: len(valid) // 2]
        event = orjson.loads(valid)
        if kind == "missing_field":
            del event[REQUIRED_FIELDS[round_ % len(REQUIRED_FIELDS)]]
        elif kind == "wrong_type":
            choice = round_ % 3
            if choice == 0:
                event["user_id"] = int(event["user_id"].rsplit("-", 1)[1])
            elif choice == 1:
                event["event_time"] = ms
            else:
                event["page_url"] = {"href": event["page_url"]}
        else:
            event["event_type"] = UNKNOWN_EVENT_TYPES[round_ % len(UNKNOWN_EVENT_TYPES)]
        return orjson.dumps(event)
