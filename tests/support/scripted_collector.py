"""An HTTP server that answers the browser tracker as a test scripts it, for tracker.js's own tests in Chromium.

It serves the real tracker.js and a page that loads it, records every request the tracker makes, and answers
``/v1/batch`` and ``/v1/event`` with the responses a test queued (a status and headers, or a dropped
connection), then 200 once the script is used up. It is what lets a test say "the collector answers 503 with
Retry-After: 1, then 400" in a second, without a broker; the real collector is driven in
tests/e2e/test_collect_browser.py.
"""

from __future__ import annotations

import html
import json
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

TRACKER_JS = Path(__file__).resolve().parents[2] / "src" / "rtap" / "collect" / "static" / "tracker.js"
WRITE_KEY = "test-key"
DROP = -1  # a scripted "status": close the connection without an answer, as a collector that died mid-request


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Received:
    path: str
    body: dict[str, Any]
    content_type: str
    at: float  # time.monotonic()
    answered: int

    @property
    def events(self) -> list[dict[str, Any]]:
        """The events of a batch, or the one event of a beacon."""
        events: list[dict[str, Any]] = self.body["events"] if self.path == "/v1/batch" else [self.body]
        return events


class ScriptedCollector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._script: deque[Answer] = deque()
        self._received: list[Received] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="scripted-collector", daemon=True)

    def answer(self, *answers: Answer | int) -> None:
        """Queue the next answers to /v1/batch and /v1/event (a bare int is a status without headers)."""
        with self._lock:
            self._script.extend(a if isinstance(a, Answer) else Answer(a) for a in answers)

    def received(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self._received if path is None or r.path == path]

    def events(self, path: str | None = None) -> list[dict[str, Any]]:
        return [event for request in self.received(path) for event in request.events]

    def wait_for(self, count: int, path: str | None = None, timeout_s: float = 10.0) -> list[Received]:
        """Until at least ``count`` requests (to ``path``) arrived; AssertionError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while len(found := self.received(path)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} of {count} requests to {path or 'any path'} in {timeout_s} s")
            time.sleep(0.05)
        return found

    def page_url(self, **attributes: str | int) -> str:
        """The test page, its tracker configured with ``data-*`` attributes (batch_size=3 -> data-batch-size)."""
        query = "&".join(f"{name.replace('_', '-')}={value}" for name, value in attributes.items())
        return f"{self.url}/page.html?{query}"

    def _next(self) -> Answer:
        with self._lock:
            return self._script.popleft() if self._script else Answer(200)

    def _record(self, request: Received) -> None:
        with self._lock:
            self._received.append(request)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test asserts on what was received, not on a log."""

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path == "/tracker.js":
                    self._send(200, "text/javascript", TRACKER_JS.read_bytes())
                elif parts.path == "/page.html":
                    attributes = " ".join(
                        f'data-{html.escape(name)}="{html.escape(value)}"' for name, value in parse_qsl(parts.query)
                    )
                    page = (
                        "<!doctype html><html><head><title>tracker test</title><link rel='icon' href='data:,'>"
                        f'<script src="/tracker.js" data-write-key="{WRITE_KEY}" {attributes}></script></head>'
                        "<body><button id='buy' data-rtap-event='add_to_cart' data-rtap-product-id='sku-1'"
                        " data-rtap-category='bags' data-rtap-price='12.50' data-rtap-quantity='2'>buy</button>"
                        "</body></html>"
                    )
                    self._send(200, "text/html", page.encode())
                else:
                    self._send(404, "text/plain", b"not here")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                answer = collector._next()
                collector._record(
                    Received(
                        path=urlsplit(self.path).path,
                        body=json.loads(raw),
                        content_type=self.headers.get("Content-Type", ""),
                        at=time.monotonic(),
                        answered=answer.status,
                    )
                )
                if answer.status == DROP:
                    self.close_connection = True
                    return
                self._send(answer.status, "application/json", b'{"accepted": 0}', answer.headers)

            def _send(
                self, status: int, content_type: str, body: bytes, headers: Mapping[str, str] | None = None
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def start(self) -> ScriptedCollector:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@contextmanager
def scripted_collector() -> Iterator[ScriptedCollector]:
    collector = ScriptedCollector().start()
    try:
        yield collector
    finally:
        collector.stop()
