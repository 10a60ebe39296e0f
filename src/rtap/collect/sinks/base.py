"""The sink a collector writes to, as the routes see it: durable or refused, and healthy or not.

One implementation today (:class:`~rtap.collect.sinks.kafka.KafkaSink`); the routes know only this interface,
so they cannot answer 2xx on anything but :meth:`Sink.send` returning.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

#: One record: its key (None: no key) and its value.
Record = tuple[bytes | None, bytes]


@dataclass(frozen=True)
class Health:
    """Whether the sink accepts writes now, and why not in one line when it does not."""

    ok: bool
    detail: str


class Sink(ABC):
    """Where accepted events go. Started before the first request, closed after the last."""

    @abstractmethod
    async def start(self) -> None:
        """Runs once, when the server starts and before it answers any request."""

    @abstractmethod
    async def send(self, records: Sequence[Record]) -> None:
        """Runs once per accepted request, with all of its records. Returns only when every record is durably
        stored; otherwise raises :class:`~rtap.collect.api.Refused` (503 and ``Retry-After`` when the client
        should send them again). It never waits longer than the sink's own timeout."""

    @abstractmethod
    def health(self) -> Health:
        """Runs on every request and on ``GET /healthz``: cheap, never blocking."""

    @abstractmethod
    def queued(self) -> int:
        """Records handed to the sink and not yet stored (bounded by the sink's queue)."""

    @abstractmethod
    async def close(self) -> None:
        """Runs once, when the server stops, after the last request: stores or fails what is still queued."""
