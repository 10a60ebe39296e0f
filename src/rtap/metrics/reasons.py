"""Dead-letter reason classes: a small fixed label set derived from the contract's error text.

The ``error`` column says exactly what broke ("price: below 0", "record too large: 70123 bytes"); as a
metric label that text would make one time series per distinct message. The class keeps what an operator
alerts and graphs on (is it broken JSON, a producer sending the wrong types, oversize records?) with a
bounded number of series; ``rtap sql`` on ``dead_letters`` has the full text.
"""

from __future__ import annotations

import functools
import re

# In order: the first pattern that matches names the class. The texts are those of the job's contract
# validation (rtap.contract.validator); tests/unit/metrics/test_reasons.py runs every rule through the job's
# transforms and checks that none falls through to OTHER.
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("empty", re.compile(r"^empty record")),
    ("too_large", re.compile(r"^record too large")),
    ("invalid_json", re.compile(r"^invalid JSON")),
    ("not_an_object", re.compile(r"^not a JSON object")),
    ("missing_field", re.compile(r"^\w+: required ")),
    ("wrong_type", re.compile(r"^\w+: expected \w+, got ")),
    ("out_of_range", re.compile(r"^\w+: (number out of range|below |above )")),
    ("not_allowed", re.compile(r"^\w+: must be one of ")),
    ("bad_format", re.compile(r"^\w+: (not a valid |does not match pattern)")),
    ("bad_length", re.compile(r"^\w+: (shorter|longer) than ")),
    ("implausible_time", re.compile(r"^(event_time|timestamp): outside ")),  # timestamp: the legacy format's
)
OTHER = "other"
REASON_CLASSES: tuple[str, ...] = (*(name for name, _ in _PATTERNS), OTHER)


@functools.lru_cache(maxsize=4096)  # distinct messages per batch are few; the cache bounds the regex work
def reason_class(error: str | None) -> str:
    """The class of one dead letter's ``error`` text (:data:`OTHER` when no pattern matches)."""
    text = error or ""
    return next((name for name, pattern in _PATTERNS if pattern.search(text)), OTHER)
