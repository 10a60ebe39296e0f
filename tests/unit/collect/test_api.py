"""One table of what a client sees: every reason has a status, the retryable ones (and only they) say when."""

from __future__ import annotations

import re
from pathlib import Path

import orjson

from rtap.collect.api import ANSWERS, Reason, Refused, refusal

DOCS = Path(__file__).resolve().parents[3] / "docs" / "collector.md"


def test_every_reason_has_an_answer_and_only_408_429_and_503_are_retried() -> None:
    assert set(ANSWERS) == set(Reason)
    for reason, answer in ANSWERS.items():
        assert answer.retry == (answer.status in (408, 429, 503)), reason
        assert 400 <= answer.status < 600


def test_a_refusal_is_json_with_its_reason_and_retry_after_when_retryable() -> None:
    busy = refusal(Refused(Reason.QUEUE_FULL, "the queue is full", retry_after_s=7), {"Vary": "Origin"})
    assert busy.status_code == 503
    assert busy.headers["retry-after"] == "7"
    assert busy.headers["vary"] == "Origin"
    assert orjson.loads(bytes(busy.body)) == {"error": "the queue is full", "reason": "queue_full"}
    final = refusal(Refused(Reason.UNKNOWN_WRITE_KEY, "unknown write key"))
    assert final.status_code == 401
    assert "retry-after" not in final.headers


def test_docs_list_every_reason_with_its_status() -> None:
    text = DOCS.read_text()
    for reason, answer in ANSWERS.items():
        assert re.search(rf"\|\s*{answer.status}\s*\|\s*`{reason.value}`", text), (
            f"docs/collector.md lacks {reason.value}"
        )
