"""Kafka's default partitioner, so the ground truth knows which partition each record lands in.

The pipeline's lateness rule is per Kafka partition, so the truth has to predict partitions exactly as
the producer assigns them: the Java client's default (and librdkafka's ``murmur2_random``) partitioner,
``(murmur2(key) & 0x7fffffff) % partitions``. This is a line-by-line port of
``org.apache.kafka.common.utils.Utils.murmur2`` with Java's 32-bit signed overflow made explicit.
"""

from __future__ import annotations

import struct

import numpy as np

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash of ``data`` as Java's signed 32-bit ``int``."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    tail = length & ~3
    for k in struct.unpack_from(f"<{length >> 2}I", data):
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    remaining = length & 3
    if remaining == 3:
        h ^= data[tail + 2] << 16
    if remaining >= 2:
        h ^= data[tail + 1] << 8
    if remaining >= 1:
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def kafka_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a non-null ``key``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def kafka_partitions(keys: list[bytes], partitions: int) -> list[int]:
    """:func:`kafka_partition` of many keys of one length at once (numpy, 32-bit wrap-around like Java).

    The generator makes session ids in batches; hashing them together costs a fraction of a
    microsecond per key instead of several in the scalar loop.
    """
    if not keys:
        return []
    length = len(keys[0])
    if any(len(key) != length for key in keys):
        raise ValueError("kafka_partitions needs keys of one length")
    data = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), length)
    m = np.uint32(_M)
    h = np.full(len(keys), (_SEED ^ length) & _MASK, dtype=np.uint32)
    tail = length & ~3
    if tail:
        words = np.ascontiguousarray(data[:, :tail]).view("<u4")
        for column in range(tail >> 2):
            k = words[:, column] * m
            k ^= k >> np.uint32(24)
            k *= m
            h *= m
            h ^= k
    remaining = length & 3
    if remaining == 3:
        h ^= data[:, tail + 2].astype(np.uint32) << np.uint32(16)
    if remaining >= 2:
        h ^= data[:, tail + 1].astype(np.uint32) << np.uint32(8)
    if remaining >= 1:
        h ^= data[:, tail].astype(np.uint32)
        h *= m
    h ^= h >> np.uint32(13)
    h *= m
    h ^= h >> np.uint32(15)
    return ((h & np.uint32(0x7FFFFFFF)) % np.uint32(partitions)).tolist()  # type: ignore[no-any-return]
