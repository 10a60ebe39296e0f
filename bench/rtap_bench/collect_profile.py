"""The collector's own code path, in-process: its ASGI app called directly on the no-op routes, no HTTP server.

``bench/profile_collect.py`` is the command; this is what it runs (what is measured and left out: its docstring).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
from starlette.types import Message

from rtap.collect.api import Reason, Refused
from rtap.collect.routes import create_app
from rtap.collect.sinks.base import Health, Record, Sink
from rtap.settings import DEMO_WRITE_KEY, CollectorSettings


class RefusingSink(Sink):
    """The noop routes never reach a sink; this one refuses, so a route that did would show as a failure."""

    async def start(self) -> None:
        return None

    async def send(self, records: Sequence[Record]) -> None:
        raise Refused(Reason.KAFKA_UNAVAILABLE, "the profile has no Kafka")

    def health(self) -> Health:
        return Health(ok=True, detail="no Kafka: the noop routes only")

    def queued(self) -> int:
        return 0

    async def close(self) -> None:
        return None


def body(events: int) -> bytes:
    at = "2026-12-03T17:00:00.000Z"
    event: dict[str, Any] = {"type": "page_view", "created_at": at, "anonymous_id": "a1", "session_id": "s1"}
    batch = [{**event, "event_id": str(uuid.uuid4()), "url": f"https://shop.example/p/{n}"} for n in range(events)]
    if events == 1:
        return orjson.dumps({"write_key": DEMO_WRITE_KEY, "sent_at": at, **batch[0]})
    return orjson.dumps({"write_key": DEMO_WRITE_KEY, "sent_at": at, "events": batch})


async def run(requests: int, events: int) -> float:
    """CPU seconds per request over ``requests`` calls, after a warm-up."""
    settings = CollectorSettings(
        _env_file=None,  # type: ignore[call-arg]
        bench_noop=True,
        key_events_per_s=1e9,
        key_burst=10**9,
        ip_events_per_s=1e9,
        ip_burst=10**9,
    )
    app = create_app(settings, RefusingSink(), port=8070)
    path = "/v1/noop/event" if events == 1 else "/v1/noop/batch"
    bodies = [body(events) for _ in range(requests)]

    async def call(content: bytes) -> None:
        messages: list[Message] = [{"type": "http.request", "body": content, "more_body": False}]
        sent: list[Message] = []

        async def receive() -> Message:
            return messages.pop() if messages else {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(message)

        headers = [(b"host", b"127.0.0.1:8070"), (b"content-type", b"text/plain")]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [*headers, (b"content-length", str(len(content)).encode())],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8070),
        }
        await app(scope, receive, send)
        if sent[0]["status"] != 200:
            raise SystemExit(f"{path} answered {sent[0]['status']}: {sent[-1].get('body', b'')!r}")

    for content in bodies[: min(500, requests)]:
        await call(content)
    started = time.process_time()
    for content in bodies:
        await call(content)
    return (time.process_time() - started) / requests
