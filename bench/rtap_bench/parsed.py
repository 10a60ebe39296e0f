"""The live benchmarks' traffic as the stream job's driver receives it: Kafka records parsed as its workers do."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from rtap.settings import Settings
from rtap.stream.spark import _readers
from rtap.stream.transforms import parse_records
from rtap_bench.traffic import Traffic


def parsed_records(
    settings: Settings,
    traffic: Traffic,
    first: int,
    partitions: np.ndarray,
    *,
    now: float,
    rate: float | None = None,
) -> pa.Table:
    """Records ``first`` .. ``first + len(partitions) - 1`` of ``traffic`` on the contract-v1 topic, in the given
    partitions (the offset of record ``n`` is ``n``: increasing within every partition), appended at ``now``, parsed.

    Each was sent at ``now``, or with ``rate`` (events/s) the last of them at ``now`` and the others before it.
    """
    count = len(partitions)
    sent = [now if rate is None else now - (count - 1 - i) / rate for i in range(count)]
    keys, values = zip(*(traffic.payload(first + i, sent[i]) for i in range(count)), strict=True)
    kafka = pa.record_batch(
        {
            "key": pa.array(keys, pa.binary()),
            "value": pa.array(values, pa.binary()),
            "topic": pa.array([settings.kafka.topic] * count),
            "partition": pa.array(partitions, pa.int32()),
            "offset": pa.array(np.arange(first, first + count), pa.int64()),
            "timestamp": pa.array(np.full(count, int(now * 1000)), pa.timestamp("ms", tz="UTC")),
        }
    )
    stream = settings.stream
    readers = _readers(
        tuple(sorted(settings.kafka.input_topics.items())), stream.max_record_bytes, stream.max_future_skew_s
    )
    return pa.Table.from_batches([parse_records(kafka, readers, max_raw_bytes=stream.max_record_bytes)])
