"""What a client of the collector sees: every answer's status, its JSON reason and whether to retry, in one place.

A request is accepted whole or refused whole. Accepted: ``200 {"accepted": N}``, and only once Kafka has
acknowledged every one of its N events. Refused: a status, ``{"error": "<one line>", "reason": "<code>"}``
and, when trying again later can succeed, ``Retry-After``. The table below is the contract with the tracker
(``static/tracker.js`` retries exactly the retryable statuses) and with docs/collector.md, which lists the
same reasons with what a client should do.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import orjson
from starlette.responses import Response


@dataclass(frozen=True)
class Answer:
    """One kind of refusal: its HTTP status, whether the client should send the same request again later, and
    whether the connection is closed after it (a client too slow to send its body would go on holding it)."""

    status: int
    retry: bool
    close: bool = False


class Reason(Enum):
    """Why a request was refused; the value is the ``reason`` code in the JSON body and the metrics' label."""

    INVALID_JSON = "invalid_json"  # the body (or the pixel's e=) is not JSON
    WRONG_SHAPE = "wrong_shape"  # JSON, but not {"events": [object, ...]} / an object
    EMPTY_BATCH = "empty_batch"  # a batch with no events
    UNSUPPORTED_ENCODING = "unsupported_encoding"  # Content-Encoding other than gzip or identity
    INVALID_GZIP = "invalid_gzip"  # Content-Encoding: gzip, but the body is no complete gzip stream
    MISSING_WRITE_KEY = "missing_write_key"
    UNKNOWN_WRITE_KEY = "unknown_write_key"
    ORIGIN_NOT_ALLOWED = "origin_not_allowed"  # the browser's Origin is not one of the key's origins
    BODY_TOO_LARGE = "body_too_large"  # the body, or what it inflates to
    BODY_TIMEOUT = "body_timeout"  # the body did not arrive within RTAP_COLLECT_BODY_TIMEOUT_S
    EVENT_TOO_LARGE = "event_too_large"  # one event, as it would be written to Kafka
    TOO_MANY_EVENTS = "too_many_events"  # more events in one request than RTAP_COLLECT_MAX_BATCH_EVENTS
    RATE_LIMITED = "rate_limited"  # the write key's or the client's token bucket is empty
    KAFKA_UNAVAILABLE = "kafka_unavailable"  # the sink is unhealthy: no broker, or deliveries failing
    QUEUE_FULL = "queue_full"  # the producer's bounded queue is full
    ACK_TIMEOUT = "ack_timeout"  # Kafka did not acknowledge within RTAP_COLLECT_ACK_TIMEOUT_S
    DELIVERY_FAILED = "delivery_failed"  # Kafka refused a record (e.g. it exceeds the topic's message size)


ANSWERS: dict[Reason, Answer] = {
    Reason.INVALID_JSON: Answer(400, retry=False),
    Reason.WRONG_SHAPE: Answer(400, retry=False),
    Reason.EMPTY_BATCH: Answer(400, retry=False),
    Reason.UNSUPPORTED_ENCODING: Answer(415, retry=False),
    Reason.INVALID_GZIP: Answer(400, retry=False),
    Reason.MISSING_WRITE_KEY: Answer(401, retry=False),
    Reason.UNKNOWN_WRITE_KEY: Answer(401, retry=False),
    Reason.ORIGIN_NOT_ALLOWED: Answer(403, retry=False),
    Reason.BODY_TOO_LARGE: Answer(413, retry=False),
    Reason.BODY_TIMEOUT: Answer(408, retry=True, close=True),
    Reason.EVENT_TOO_LARGE: Answer(413, retry=False),
    Reason.TOO_MANY_EVENTS: Answer(413, retry=False),
    Reason.RATE_LIMITED: Answer(429, retry=True),
    Reason.KAFKA_UNAVAILABLE: Answer(503, retry=True),
    Reason.QUEUE_FULL: Answer(503, retry=True),
    Reason.ACK_TIMEOUT: Answer(503, retry=True),
    Reason.DELIVERY_FAILED: Answer(503, retry=True),
}


class Refused(Exception):
    """A request the collector refuses: raised anywhere below a route, turned into the answer by :func:`refusal`.

    ``events`` is how many events the request carried, when that is known (the metrics count refused events).
    ``retry_after_s`` goes into ``Retry-After`` and must be given for the retryable reasons.
    """

    def __init__(self, reason: Reason, message: str, *, retry_after_s: int | None = None, events: int = 1) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retry_after_s = retry_after_s
        self.events = events

    @property
    def status(self) -> int:
        return ANSWERS[self.reason].status


def refusal(refused: Refused, headers: dict[str, str] | None = None) -> Response:
    """The HTTP answer to a refused request: its status, the JSON body and ``Retry-After`` when retryable."""
    answer = ANSWERS[refused.reason]
    extra = dict(headers or {})
    if answer.retry:
        extra["Retry-After"] = str(refused.retry_after_s or 1)
    if answer.close:
        extra["Connection"] = "close"
    body = orjson.dumps({"error": refused.message, "reason": refused.reason.value})
    return Response(body, status_code=answer.status, headers=extra, media_type="application/json")


def accepted(count: int, headers: dict[str, str] | None = None) -> Response:
    """``200 {"accepted": count}``: every one of the request's events is in Kafka."""
    return Response(orjson.dumps({"accepted": count}), headers=headers, media_type="application/json")
