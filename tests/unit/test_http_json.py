"""rtap.http_json: one readable error per failed request, and a busy service (429/503 with Retry-After)
tried again as it asks, within bounds."""

from __future__ import annotations

import httpx
import pytest

from rtap.errors import ServiceError
from rtap.http_json import new_client, request_json, retry_after_s


def _serving(*answers: httpx.Response) -> tuple[httpx.Client, list[httpx.Request]]:
    """A client whose service gives ``answers`` in turn (the last one again once they run out)."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[min(len(seen), len(answers)) - 1]

    return new_client("http://service.test", 5.0, httpx.MockTransport(handler)), seen


def test_a_busy_answer_is_tried_again_after_the_wait_it_asks_for() -> None:
    client, seen = _serving(
        httpx.Response(429, headers={"Retry-After": "2"}, json={"error": "rate limited"}),
        httpx.Response(503, headers={"Retry-After": "1"}, json={"error": "busy"}),
        httpx.Response(200, json={"ok": True}),
    )
    waits: list[float] = []

    assert request_json(client, "POST", "/v1/event", body={"a": 1}, sleep=waits.append) == {"ok": True}
    assert waits == [2.0, 1.0]
    assert [request.content for request in seen] == [b'{"a":1}'] * 3  # the same request each time


def test_a_503_that_does_not_say_when_is_an_error_at_once() -> None:
    client, seen = _serving(httpx.Response(503, json={"detail": "the warehouse is unavailable"}))
    waits: list[float] = []

    with pytest.raises(ServiceError, match=r"^GET http://service.test/api/health: HTTP 503 .*unavailable"):
        request_json(client, "GET", "/api/health", sleep=waits.append)
    assert (len(seen), waits) == (1, [])


def test_retries_stop_after_a_few_tries_and_say_so() -> None:
    client, seen = _serving(httpx.Response(429, headers={"Retry-After": "1"}, text="slow down"))
    waits: list[float] = []

    with pytest.raises(ServiceError, match=r"HTTP 429 slow down \(after 4 tries over 3 s\)$"):
        request_json(client, "GET", "/api/panels/x", sleep=waits.append)
    assert (len(seen), waits) == (4, [1.0, 1.0, 1.0])


def test_a_wait_beyond_the_bound_is_not_waited() -> None:
    client, seen = _serving(httpx.Response(503, headers={"Retry-After": "3600"}, text="come back in an hour"))
    waits: list[float] = []

    with pytest.raises(ServiceError, match=r"HTTP 503 come back in an hour$"):
        request_json(client, "GET", "/healthz", sleep=waits.append)
    assert (len(seen), waits) == (1, [])


@pytest.mark.parametrize(
    ("status", "header", "expected"),
    [
        (429, "5", 5.0),
        (503, " 0 ", 0.0),
        (503, "Wed, 21 Oct 2026 07:28:00 GMT", None),  # a date: not rtap's, not honoured
        (503, "-1", None),
        (429, None, None),
        (500, "5", None),  # only 429 and 503 are worth the same request again
        (200, "5", None),
    ],
)
def test_retry_after(status: int, header: str | None, expected: float | None) -> None:
    assert retry_after_s(status, header) == expected


def test_an_unreachable_service_is_one_line() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = new_client("http://service.test", 5.0, httpx.MockTransport(refuse))
    with pytest.raises(ServiceError, match=r"^GET http://service.test/x: connection refused$"):
        request_json(client, "GET", "/x")
