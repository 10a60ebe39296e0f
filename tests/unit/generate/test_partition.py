"""Kafka's murmur2 partitioner, checked against the Java client's own test vectors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtap.generate import kafka_partition, murmur2
from rtap.generate.partition import kafka_partitions


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        # org.apache.kafka.common.utils.UtilsTest#testMurmur2
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
)
def test_murmur2_matches_kafka(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


def test_partition_of_a_session_id_matches_the_java_client() -> None:
    # Computed with org.apache.kafka.common.utils.Utils (kafka-clients 4.1.1): toPositive(murmur2(key)) % 6.
    key = b"0b8d4a1e-6f35-4b39-9d8c-3f1b2e4a5c6d"
    assert murmur2(key) == -747091493
    assert kafka_partition(key, 6) == 3


@given(st.binary(max_size=64), st.integers(min_value=1, max_value=1024))
def test_partition_is_in_range(key: bytes, partitions: int) -> None:
    assert 0 <= kafka_partition(key, partitions) < partitions


@given(
    st.integers(min_value=0, max_value=40).flatmap(lambda n: st.lists(st.binary(min_size=n, max_size=n), max_size=20))
)
def test_batch_hashing_equals_the_scalar_port(keys: list[bytes]) -> None:
    for partitions in (1, 6, 7):
        assert kafka_partitions(keys, partitions) == [kafka_partition(key, partitions) for key in keys]


def test_batch_hashing_refuses_mixed_lengths() -> None:
    with pytest.raises(ValueError, match="one length"):
        kafka_partitions([b"a", b"bb"], 6)
