"""Token buckets per write key and per client, refilled with time, in bounded memory."""

from __future__ import annotations

import pytest

from rtap.collect.api import Reason, Refused
from rtap.collect.limiters import RateLimiter
from rtap.settings import CollectorSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(clock: Clock, **limits: object) -> RateLimiter:
    defaults: dict[str, object] = {"max_batch_events": 5, "ip_burst": 10, "ip_events_per_s": 2.0, "limiter_entries": 3}
    return RateLimiter(CollectorSettings(_env_file=None, **{**defaults, **limits}), keys=1, clock=clock)  # type: ignore[arg-type,call-arg]


def test_a_client_gets_its_burst_then_its_rate_and_is_told_how_long_to_wait() -> None:
    clock = Clock()
    limits = limiter(clock)
    limits.admit("k", "1.2.3.4", 10)
    with pytest.raises(Refused) as caught:
        limits.admit("k", "1.2.3.4", 3)
    assert caught.value.reason == Reason.RATE_LIMITED
    assert caught.value.retry_after_s == 2  # 3 events at 2/s: 1.5 s, rounded up
    clock.now += 1.5
    limits.admit("k", "1.2.3.4", 3)
    limits.admit("k", "5.6.7.8", 10)  # another client has its own bucket


def test_a_refused_request_takes_from_neither_bucket() -> None:
    clock = Clock()
    limits = limiter(clock, key_burst=12, key_events_per_s=1.0)
    limits.admit("k", "1.2.3.4", 10)
    with pytest.raises(Refused):
        limits.admit("k", "5.6.7.8", 5)  # the key has 2 left
    limits.admit("k", "5.6.7.8", 2)  # ... and the refusal took none of them, nor of the client's


def test_a_burst_smaller_than_a_batch_is_refused_by_the_settings() -> None:
    with pytest.raises(ValueError, match="a full batch could never pass"):
        CollectorSettings(_env_file=None, max_batch_events=100, ip_burst=50)  # type: ignore[call-arg]


def test_each_of_several_workers_takes_its_share_of_a_keys_limit_and_a_clients_whole() -> None:
    clock = Clock()
    limits = limiter(clock, workers=4, key_burst=40, key_events_per_s=8.0, ip_burst=10)
    for client in ("1.1.1.1", "2.2.2.2"):  # each client its whole burst; together the key's share, 40 / 4
        limits.admit("k", client, 5)
    with pytest.raises(Refused) as caught:
        limits.admit("k", "3.3.3.3", 1)
    assert caught.value.retry_after_s == 1  # one event at the share's 8 / 4 = 2 events/s
    clock.now += 0.5
    limits.admit("k", "3.3.3.3", 1)


def test_a_keys_share_must_still_hold_a_full_batch() -> None:
    with pytest.raises(ValueError, match=r"key_burst=1000 / workers=4 is below max_batch_events=500"):
        CollectorSettings(_env_file=None, key_burst=1000, workers=4)  # type: ignore[call-arg]
