"""Rate limits in events per second: one token bucket per write key and one per client address.

Memory is bounded whatever the traffic: buckets live in a fixed-size LRU map, so a flood from many addresses
evicts the least recently seen ones (an evicted address starts again with a full bucket: the per-key bucket
still caps what a site accepts in total). A request costs one token per event and takes from both buckets or
from neither, so a refused request leaves both as they were.

With several server processes (``RTAP_COLLECT_WORKERS``, rtap.collect.workers) each keeps its own buckets, and
nothing is shared between them. A key's rate and burst are split evenly: a site's traffic comes from many
clients and connections, which the kernel spreads over the processes, so the shares add up to the key's limit.
A client's are not split: a browser keeps one or a few connections open, all of which may land on one process,
and a split would cut it to a fraction of its rate; the price is that a client spreading its connections over
every process may get up to ``workers`` times its rate (still bounded, and the key's share still caps it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from rtap.buckets import TokenBuckets
from rtap.collect.api import Reason, Refused
from rtap.settings import CollectorSettings


class RateLimiter:
    """The per-key and per-client buckets of one collector."""

    def __init__(self, settings: CollectorSettings, keys: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._keys = TokenBuckets(
            settings.key_events_per_s / settings.workers, settings.key_burst // settings.workers, max(keys, 1)
        )
        self._clients = TokenBuckets(settings.ip_events_per_s, settings.ip_burst, settings.limiter_entries)

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
