"""What the tests of ``rtap produce``'s producer replacement read of a run: its counters, and the records its
current producer holds."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from rtap import metrics
from rtap.ingest.producer import _RunProducer


def producer_counter(name: str) -> float:
    """The value of one of ``rtap produce``'s counters (0 before it was first counted)."""
    registry = CollectorRegistry()
    registry.register(metrics.PRODUCER)
    return registry.get_sample_value(name) or 0.0


def queued(run: _RunProducer) -> list[tuple[bytes, bytes]]:
    """The (value, key) of the records the run's current producer holds, in its order (purged and reported to the
    run's tally)."""
    run.tally.purged = []
    run.current.purge()
    assert run.current.flush(5) == 0
    held, run.tally.purged = run.tally.purged, None
    return [(record.value, record.key) for record in held]
