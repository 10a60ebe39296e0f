"""Admission control for the dashboard's warehouse queries: a few at a time, and one per panel and range.

Why: every query shares the machine's cores with the stream job (under chDB it runs in the job's process, on
the one read-only connection, a query at a time), and so does a server's reader; a page refreshes each panel
every few seconds, so N open pages would cost N times the queries, and a burst of requests (the thread pool
admits ~40) would queue for that one connection. Two small pieces keep the cost of viewers about that of one:

- :class:`ResultCache`: one result per key (panel, range) for a while (longer for a wider range:
  rtap.dashboard.api.cache_step_s), computed once however many requests ask for it meanwhile (the others wait
  for that one computation), at most ``max_entries`` kept;
- :class:`Admission`: at most ``slots`` computations run at once; one that finds no free slot within
  ``wait_s`` is refused (:class:`~rtap.errors.BusyError`, HTTP 503 with Retry-After), not queued without end;
- :class:`ClientRateLimit`: a client that asks faster than a page does is refused (429 with Retry-After)
  before anything else runs. Cached answers are cheap, not free: a client looping on one panel got ~250 of
  them a second and took a third of the machine's CPU from the job (bench/results/admission.md).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from rtap import metrics
from rtap.addresses import ClientAddress, client_key
from rtap.buckets import TokenBuckets
from rtap.errors import BusyError

V = TypeVar("V")


class Admission:
    """A counting gate: :meth:`slot` admits at most ``slots`` holders at once, waiting at most ``wait_s``."""

    def __init__(self, slots: int, wait_s: float) -> None:
        self.slots = slots
        self._free = threading.BoundedSemaphore(slots)
        self._wait_s = wait_s
        self._lock = threading.Lock()
        self.running = 0
        self.most_at_once = 0  # the high-water mark of ``running``: what the limit held to

    @contextmanager
    def slot(self, what: str) -> Iterator[None]:
        if not self._free.acquire(timeout=self._wait_s):
            raise BusyError(f"{what}: all {self.slots} query slots stayed busy for {self._wait_s:g} s")
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            yield
        finally:
            with self._lock:
                self.running -= 1
            self._free.release()


@dataclass
class _Entry(Generic[V]):
    flight: Future[V] = field(default_factory=Future)
    expires: float = 0.0


class ResultCache(Generic[V]):
    """Values by key for the time each was given, each computed by one caller while the others wait for it."""

    def __init__(self, max_entries: int, wait_s: float) -> None:
        self._max_entries = max_entries
        self._wait_s = wait_s  # how long a caller waits for another's computation before giving up
        self._entries: OrderedDict[Hashable, _Entry[V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], V], ttl_s: float) -> tuple[V, bool]:
        """The value for ``key`` and whether this call computed it (False: cached, or computed by another);
        a value this call computes is kept for ``ttl_s``.

        A failed computation is not kept: its callers get its exception, the next caller tries again.
        """
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.flight.done() and entry.expires <= time.monotonic():
                entry = None  # expired: computed anew below
            leader = entry is None
            if entry is None:
                entry = _Entry()
                self._entries[key] = entry
                self._evict()
            else:
                self._entries.move_to_end(key)
        if not leader:
            try:
                return entry.flight.result(timeout=self._wait_s), False
            except FutureTimeout:
                raise BusyError(f"no result for {key!r} within {self._wait_s:g} s") from None
        try:
            value = compute()
        except BaseException as exc:
            with self._lock:
                if self._entries.get(key) is entry:
                    del self._entries[key]
            entry.flight.set_exception(exc)
            raise
        entry.expires = time.monotonic() + ttl_s
        entry.flight.set_result(value)
        return value, True

    def peek(self, key: Hashable) -> V | None:
        """The value for ``key`` if one is kept and fresh, without waiting or computing; else None."""
        with self._lock:  # a failed computation is never kept (get drops it before its callers hear)
            entry = self._entries.get(key)
            if entry is None or not entry.flight.done() or entry.expires <= time.monotonic():
                return None
        return entry.flight.result()

    def _evict(self) -> None:
        """Drop the least recently used finished entries beyond ``max_entries`` (in-flight ones stay)."""
        excess = len(self._entries) - self._max_entries
        for key in [k for k, e in self._entries.items() if e.flight.done()][: max(0, excess)]:
            del self._entries[key]


class CachedAnswers:
    """ASGI middleware: a GET whose answer ``answer`` finds (a shared panel result the cache holds) is sent from
    here, before the framework's routing, parameter handling and thread pool; any other request goes on to the
    app, which answers or refuses it as always. Why: viewers of a live page are mostly cached answers, and one
    cost ~665 µs of the dashboard's CPU through FastAPI, most of it in the framework's routing and dependency
    handling and the hop to its thread pool (py-spy over a loop of one cached panel on 2026-12-04); from here
    ~215 µs. ``create_app`` puts it inside the login and the rate limit, which apply to it as to any request."""

    def __init__(self, app: ASGIApp, *, answer: Callable[[Scope], bytes | None]) -> None:
        self._app = app
        self._answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = self._answer(scope) if scope["type"] == "http" and scope["method"] == "GET" else None
        if body is None:
            await self._app(scope, receive, send)
            return
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class ClientRateLimit:
    """ASGI middleware: each client address gets ``burst`` requests, then ``rate`` a second; a request beyond
    that is answered 429 with ``Retry-After`` and a JSON reason, before routing, the thread pool or a query.
    A request without an address (a Unix socket) is not limited. Behind ``trusted_proxies`` (a TLS or login
    proxy, from which every viewer arrives) the address is the one their ``X-Forwarded-For`` gives
    (rtap.addresses), so that viewers do not share the proxy's bucket."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        rate: float,
        burst: int,
        entries: int,
        trusted_proxies: Sequence[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._app = app
        self._rate = rate
        self._buckets = TokenBuckets(rate, burst, entries)
        self._proxied = bool(trusted_proxies)
        self._addresses = ClientAddress(trusted_proxies)
        self._clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client") if scope["type"] == "http" else None
        if client:
            key = self._client(client[0], scope) if self._proxied else client[0]
            now = self._clock()
            tokens = self._buckets.tokens(key, now)
            wait = self._buckets.wait_s(tokens, 1)
            if wait > 0:
                await self._refusal(wait)(scope, receive, send)
                return
            self._buckets.set(key, tokens - 1, now)
        await self._app(scope, receive, send)

    def _client(self, peer: str, scope: Scope) -> str:
        """The viewer's address (an IPv6 one's /64: rtap.addresses.client_key): the peer, or what a trusted
        proxy's X-Forwarded-For lines say."""
        forwarded = [value.decode("latin-1") for name, value in scope["headers"] if name == b"x-forwarded-for"]
        resolved = self._addresses.resolve(peer, forwarded)
        return peer if resolved is None else client_key(resolved)

    def _refusal(self, wait_s: float) -> Response:
        metrics.DASHBOARD.rate_limited.inc()
        retry_after = max(1, math.ceil(wait_s))
        detail = f"more than {self._rate:g} requests a second: retry in {retry_after} s"
        return JSONResponse({"detail": detail}, status_code=429, headers={"Retry-After": str(retry_after)})
