"""Token buckets by name: a burst, then a rate, in bounded memory."""

from __future__ import annotations

from rtap.buckets import TokenBuckets


def test_a_bucket_gives_its_burst_then_refills_at_its_rate() -> None:
    buckets = TokenBuckets(rate=2.0, burst=10, capacity=3)
    assert buckets.tokens("a", 100.0) == 10  # a name never seen has a full bucket
    buckets.set("a", 1.0, 100.0)
    assert buckets.wait_s(buckets.tokens("a", 100.0), 3) == 1.0  # 2 tokens short at 2/s
    assert buckets.tokens("a", 101.0) == 3.0
    assert buckets.tokens("a", 1000.0) == 10  # never more than the burst


def test_memory_is_bounded_by_the_oldest_names_being_forgotten() -> None:
    buckets = TokenBuckets(rate=1.0, burst=10, capacity=3)
    for n in range(1000):
        buckets.set(f"10.0.{n // 256}.{n % 256}", 0.0, 100.0)
    assert len(buckets) == 3
    assert buckets.tokens("10.0.0.0", 100.0) == 10  # forgotten: a full bucket again
    assert buckets.tokens("10.0.3.231", 100.0) == 0  # the newest is remembered
