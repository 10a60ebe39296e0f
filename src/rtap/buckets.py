"""Token buckets by name (a client address, a write key) in bounded memory: the rate limits of the collector
(events per second) and of the dashboard (requests per second).

Memory is bounded whatever the traffic: buckets live in a fixed-size LRU map, so a flood from many names
evicts the least recently seen ones, and an evicted name starts again with a full bucket.
"""

from __future__ import annotations

from collections import OrderedDict


class TokenBuckets:
    """Buckets of ``burst`` tokens refilled at ``rate`` per second, at most ``capacity`` of them remembered.
    The caller's clock says when (``now``): one reading serves every bucket a request takes from."""

    def __init__(self, rate: float, burst: int, capacity: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._capacity = capacity
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
