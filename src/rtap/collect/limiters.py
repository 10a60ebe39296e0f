"""Rate limits in events per second: one token bucket per write key and one per client address.

Memory is bounded whatever the traffic: buckets live in a fixed-size LRU map, so a flood from many addresses
evicts the least recently seen ones (an evicted address starts again with a full bucket: the per-key bucket
still caps what a site accepts in total). A request costs one token per event and takes from both buckets or
from neither, so a refused request leaves both as they were.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from rtap.collect.api import Reason, Refused
from rtap.settings import CollectorSettings


class TokenBuckets:
    """Buckets of ``burst`` tokens refilled at ``rate`` per second, at most ``capacity`` of them remembered."""

    def __init__(self, rate: float, burst: int, capacity: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._capacity = capacity
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # name -> (tokens, at)

    def __len__(self) -> int:
        return len(self._buckets)

    def tokens(self, name: str, now: float) -> float:
        """The tokens ``name`` has at ``now`` (a full bucket for a name not remembered)."""
        found = self._buckets.get(name)
        if found is None:
            return self._burst
        tokens, at = found
        return min(self._burst, tokens + (now - at) * self._rate)

    def wait_s(self, tokens: float, cost: int) -> float:
        """How long until a bucket holding ``tokens`` can pay ``cost`` (0 if it can now)."""
        return max(0.0, (cost - tokens) / self._rate)

    def set(self, name: str, tokens: float, now: float) -> None:
        self._buckets[name] = (tokens, now)
        self._buckets.move_to_end(name)
        if len(self._buckets) > self._capacity:
            self._buckets.popitem(last=False)


class RateLimiter:
    """The per-key and per-client buckets of one collector."""

    def __init__(self, settings: CollectorSettings, keys: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._keys = TokenBuckets(settings.key_events_per_s, settings.key_burst, max(keys, 1), clock)
        self._clients = TokenBuckets(settings.ip_events_per_s, settings.ip_burst, settings.limiter_entries, clock)

    def admit(self, key: str, client: str | None, events: int) -> None:
        """Take ``events`` tokens from the key's and the client's bucket, or refuse with 429 and how long to
        wait (``Retry-After``). A request without a client address (a Unix socket) is limited by its key."""
        now = self._clock()
        key_tokens = self._keys.tokens(key, now)
        wait = self._keys.wait_s(key_tokens, events)
        client_tokens = 0.0
        if client is not None:
            client_tokens = self._clients.tokens(client, now)
            wait = max(wait, self._clients.wait_s(client_tokens, events))
        if wait > 0:
            raise Refused(
                Reason.RATE_LIMITED,
                f"rate limited: {events} events must wait {wait:.1f} s",
                retry_after_s=max(1, math.ceil(wait)),
                events=events,
            )
        self._keys.set(key, key_tokens - events, now)
        if client is not None:
            self._clients.set(client, client_tokens - events, now)
