"""librdkafka statistics reports (``stats_cb``'s JSON), cut down to what rtap reads of them."""

from __future__ import annotations

from collections.abc import Mapping

import orjson


def statistics(*sources: str, topic: str = "events", acked: Mapping[int, int] | None = None) -> str:
    """A report naming one broker per source ("configured", "learned", "internal", "logical"), and with ``acked``,
    the last acknowledged message id of each of ``topic``'s partitions (an idempotent producer's)."""
    brokers = {f"b{n}": {"name": f"b{n}", "nodeid": n, "source": source} for n, source in enumerate(sources)}
    report: dict[str, object] = {"name": "rtap#producer-1", "type": "producer", "brokers": brokers}
    if acked is not None:
        partitions = {str(p): {"partition": p, "acked_msgid": n} for p, n in acked.items()}
        partitions["-1"] = {"partition": -1, "acked_msgid": 0}  # librdkafka's queue of records without a partition
        report["topics"] = {topic: {"topic": topic, "partitions": partitions}}
    return orjson.dumps(report).decode()
