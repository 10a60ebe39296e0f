"""Traffic from another client and a measurement of its own: Kafka's Java producer (``bench/java``) and SQL that
shares nothing with :mod:`rtap_bench.traffic`.

``rtap bench`` and ``bench/outside.py`` send with ``rtap_bench.traffic`` and read freshness with its code: they
check the stack, not that code. This module runs ``OutsideProducer.java`` with the Kafka client jars ``make jars``
fetched for the broker (Java runs a single source file as it is: no build step), then reads what the warehouse made
of the run: how many of its events ``events`` holds and under how many ids, and per-event freshness
(``pipeline_batches.finished_at`` of the event's batch minus its ``event_time``) from the tables alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rtap.settings import Settings
from rtap.warehouse import WarehouseClient
from rtap_bench.results import worker_result

SOURCE = Path(__file__).resolve().parents[1] / "java" / "OutsideProducer.java"

# The run's events (found by their user ids) in `events`, and each joined to the batch of this pipeline that stored it.
_EVENTS = "SELECT count(), uniqExact(event_id) FROM {db}.events FINAL WHERE user_id LIKE {users:String}"
_FRESHNESS = """
SELECT count(), quantileExactInclusive(0.5)(ms), quantileExactInclusive(0.99)(ms), max(ms)
FROM (
    SELECT dateDiff('millisecond', e.event_time, b.finished_at) AS ms
    FROM {db}.events AS e FINAL
    INNER JOIN (
        SELECT batch_id, finished_at FROM {db}.pipeline_batches FINAL
        WHERE query_id = (SELECT argMax(query_id, finished_at) FROM {db}.pipeline_batches)
    ) AS b ON e.batch_id = b.batch_id
    WHERE e.user_id LIKE {users:String}
)
"""


def send(
    settings: Settings, topic: str, run: str, rate: float, seconds: float, timeout_s: float = 600.0
) -> dict[str, Any]:
    """Run the Java producer: ``rate`` events/s for ``seconds`` to ``topic``; its JSON line (sent, refused, behind)."""
    classpath = f"{(settings.jars_dir / 'kafka').resolve()}/*"
    args = [
        "java",
        "-cp",
        classpath,
        str(SOURCE),
        settings.kafka.bootstrap_servers,
        topic,
        run,
        str(rate),
        str(seconds),
    ]
    return worker_result(args, "the Java producer", timeout_s)


def stored(client: WarehouseClient, run: str) -> dict[str, Any]:
    """What the warehouse holds of ``run``: its events, their distinct ids, how many of them a batch of this pipeline
    stored, and their freshness (s)."""
    parameters = {"users": f"jv-{run}-%"}
    ((events, ids),) = client.query_rows(_EVENTS, parameters=parameters)
    ((batched, p50, p99, most),) = client.query_rows(_FRESHNESS, parameters=parameters)
    seconds = [float(v) / 1000 if batched else None for v in (p50, p99, most)]
    return {"events": int(events), "ids": int(ids), "batched": int(batched),
            "p50_s": seconds[0], "p99_s": seconds[1], "max_s": seconds[2]}  # fmt: skip
