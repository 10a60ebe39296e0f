"""librdkafka statistics reports (``stats_cb``'s JSON), cut down to what rtap reads of them."""

from __future__ import annotations

import orjson


def statistics(*sources: str) -> str:
    """A report naming one broker per source ("configured", "learned", "internal", "logical")."""
    brokers = {f"b{n}": {"name": f"b{n}", "nodeid": n, "source": source} for n, source in enumerate(sources)}
    return orjson.dumps({"name": "rtap#producer-1", "type": "producer", "brokers": brokers}).decode()
