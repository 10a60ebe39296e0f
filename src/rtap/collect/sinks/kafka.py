"""The Kafka sink: every request waits for Kafka's acknowledgement of each of its records, or is refused.

The producer is durable (``acks=all``, idempotent) and bounded: its queue holds at most
``RTAP_COLLECT_QUEUE_MAX_MESSAGES`` records and ``RTAP_COLLECT_QUEUE_MAX_KBYTES``; a request that does not fit is
a 503 at once, never a wait, so memory does not grow with a slow or absent broker. librdkafka gives up on a
record after ``RTAP_COLLECT_ACK_TIMEOUT_S`` and the request waits no longer than that (503 either way): a
collector never holds a browser's events in memory once it has answered, and it never answers 200 for an
event Kafka has not acknowledged (the failure Snowplow's collector issue #32 describes).

Delivery reports are served by one thread polling the producer; each request has one asyncio future, decided
there once all of its records are acknowledged or the first one fails, and the futures decided by one poll are
handed to the event loop together (one wake-up of the loop per poll, not per record or per request).

Health is the sink's, as Snowplow's ``/sink-health``: unhealthy while no broker is reachable (librdkafka's
all-brokers-down, then probes of the topic's metadata until one answers), while the topic is missing, for
``RTAP_COLLECT_RETRY_AFTER_S`` after a failed delivery (then requests are let through again, and the first
acknowledgement ends it), and for good after a fatal producer error. While unhealthy every request is a 503
at once.

A producer that knows no broker at all (librdkafka 2.16 can lose them all during a lone broker's clean shutdown:
:mod:`rtap.kafka_clients`) is replaced: a new producer takes the records to come, and the old one's are purged:
their requests are answered 503, and the tracker sends them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from rtap.collect.api import Reason, Refused
from rtap.collect.sinks.base import Health, Record, Sink
from rtap.kafka_clients import BrokerWatch
from rtap.metrics.collector import CollectorMetrics
from rtap.settings import CollectorSettings, KafkaSettings

log = logging.getLogger("rtap.collect")

_POLL_S = 0.05
# How often an unhealthy sink asks for the topic's metadata, and how long it waits for the answer.
_PROBE_EVERY_S = 1.0
_PROBE_TIMEOUT_S = 2.0
# See rtap.ingest.producer: stale partition leaders after a broker restart otherwise outlive the ack timeout.
_METADATA_REFRESH_MS = 10_000


def producer_config(kafka: KafkaSettings, collect: CollectorSettings) -> dict[str, Any]:
    """librdkafka settings of the collector's producer (on top of the one client configuration of rtap)."""
    return {
        **kafka.client_config(),
        "client.id": "rtap-collector",
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": collect.linger_ms,
        "compression.type": "lz4",
        "queue.buffering.max.messages": collect.queue_max_messages,
        "queue.buffering.max.kbytes": collect.queue_max_kbytes,
        "message.timeout.ms": int(collect.ack_timeout_s * 1000),
        "topic.metadata.refresh.interval.ms": _METADATA_REFRESH_MS,
        "reconnect.backoff.max.ms": 1000,
        # The Java client's partitioner, as rtap's own producer: a session's events share a partition.
        "partitioner": "murmur2_random",
    }


Resolved = list[tuple["asyncio.Future[KafkaError | None]", "KafkaError | None"]]


def _resolve(resolved: Resolved) -> None:
    for future, error in resolved:
        if not future.done():  # a request that timed out or was cancelled waits no more
            future.set_result(error)


class _Request:
    """One request's records in flight: its outcome is decided in the polling thread (see the module docstring)."""

    __slots__ = ("decide", "error", "future", "remaining")

    def __init__(
        self,
        future: asyncio.Future[KafkaError | None],
        count: int,
        decide: Callable[[asyncio.Future[KafkaError | None], KafkaError | None], None],
    ) -> None:
        self.future = future
        self.remaining = count
        self.error: KafkaError | None = None
        self.decide = decide

    def delivered(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            if self.error is None:
                self.error = error
                self.decide(self.future, error)
            return
        self.remaining -= 1
        if self.remaining == 0 and self.error is None:
            self.decide(self.future, None)


class KafkaSink(Sink):
    """Records to ``RTAP_KAFKA_BROWSER_TOPIC`` (see the module docstring)."""

    def __init__(self, kafka: KafkaSettings, collect: CollectorSettings, metrics: CollectorMetrics) -> None:
        self._topic = kafka.browser_topic
        self._config = producer_config(kafka, collect)
        self._max_queued = collect.queue_max_messages
        self._timeout_s = collect.ack_timeout_s
        self._retry_after_s = collect.retry_after_s
        self._metrics = metrics
        self._producer: Producer | None = None
        # Producers replaced for knowing no broker, polled until their purged records are reported.
        self._retired: list[Producer] = []
        self._generation = 0  # of the current producer: a retired one's errors are not the current one's
        self._watch = BrokerWatch()  # the current producer's statistics
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        # Health, written by the polling thread and the event loop, read by both (single assignments).
        self._reachable = False
        self._unreachable_why = "not started"
        self._failing_until = 0.0
        self._failure = ""
        self._fatal: str | None = None
        self._next_probe = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outcomes: Resolved = []  # appended to by delivery callbacks, in the polling thread only

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._producer = self._new_producer()
        await asyncio.get_running_loop().run_in_executor(None, self._probe)
        self._metrics.watch_sink(lambda: self.health().ok, self.queued)
        self._thread = threading.Thread(target=self._serve, name="rtap-collect-kafka", daemon=True)
        self._thread.start()

    async def close(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
        if self._producer is not None:
            left = await asyncio.get_running_loop().run_in_executor(None, self._producer.flush, self._timeout_s)
            self._hand_over()  # the thread has stopped: flush served the last callbacks in the executor's
            if left:
                log.error("%d records were not acknowledged by Kafka before the collector stopped", left)

    def queued(self) -> int:
        return sum(len(producer) for producer in self._retired) + (0 if self._producer is None else len(self._producer))

    def health(self) -> Health:
        if self._fatal is not None:
            return Health(False, f"the Kafka producer failed for good: {self._fatal}")
        if not self._reachable:
            return Health(False, self._unreachable_why)
        if time.monotonic() < self._failing_until:
            return Health(False, f"Kafka refused a delivery: {self._failure}")
        return Health(True, f"Kafka reachable, writing to {self._topic}")

    async def send(self, records: Sequence[Record]) -> None:
        producer = self._producer
        assert producer is not None, "send() before start()"
        if self._fatal is not None or not self._reachable or time.monotonic() < self._failing_until:
            raise Refused(Reason.KAFKA_UNAVAILABLE, self.health().detail, retry_after_s=self._retry_after_s)
        if len(producer) + len(records) > self._max_queued:
            raise Refused(Reason.QUEUE_FULL, "the producer's queue is full", retry_after_s=self._retry_after_s)
        request = _Request(asyncio.get_running_loop().create_future(), len(records), self._decide)
        started = time.perf_counter()
        try:
            for key, value in records:
                producer.produce(self._topic, value, key, on_delivery=request.delivered)
        except BufferError as exc:  # the byte bound: what was queued may still land, and dedup absorbs a resend
            raise Refused(Reason.QUEUE_FULL, "the producer's queue is full", retry_after_s=self._retry_after_s) from exc
        except KafkaException as exc:
            raise Refused(
                Reason.KAFKA_UNAVAILABLE, f"Kafka refused the records: {exc}", retry_after_s=self._retry_after_s
            ) from exc
        try:
            # librdkafka times records out after the same time: the margin lets its report arrive first.
            error = await asyncio.wait_for(request.future, self._timeout_s + 1.0)
        except TimeoutError as exc:
            raise Refused(
                Reason.ACK_TIMEOUT,
                f"Kafka did not acknowledge within {self._timeout_s:g} s",
                retry_after_s=self._retry_after_s,
            ) from exc
        if error is None:
            self._metrics.ack_seconds.observe(time.perf_counter() - started)
            self._failing_until = 0.0
            return
        if error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
            raise Refused(Reason.EVENT_TOO_LARGE, f"Kafka refused a record as too large: {error.str()}")
        self._failure = error.str()
        self._failing_until = time.monotonic() + self._retry_after_s
        raise Refused(
            Reason.DELIVERY_FAILED, f"Kafka did not store the events: {error.str()}", retry_after_s=self._retry_after_s
        )

    def _serve(self) -> None:
        """The polling thread: delivery reports, and metadata probes while the broker is unreachable."""
        while not self._stopping.is_set():
            producer = self._producer
            assert producer is not None
            producer.poll(_POLL_S)
            if self._watch.lost:
                self._replace_producer()
            if self._retired:
                for old in self._retired:
                    old.poll(0)
                self._retired = [old for old in self._retired if len(old)]
            self._hand_over()
            if not self._reachable and time.monotonic() >= self._next_probe:
                self._probe()

    def _new_producer(self) -> Producer:
        """A producer with its own broker watch, whose errors count only while it is the current one."""
        self._generation += 1
        generation = self._generation

        def on_error(error: KafkaError) -> None:
            if generation == self._generation:
                self._on_error(error)

        self._watch = BrokerWatch()
        return Producer({**self._config, **self._watch.config(), "error_cb": on_error})

    def _replace_producer(self) -> None:
        """A new producer for the records to come; the old one's records are purged (each request waiting on one
        is answered 503), and it is polled until they are all reported (see the module docstring)."""
        old = self._producer
        assert old is not None
        log.warning("the Kafka producer knows no broker any more (lost during a broker's shutdown): replacing it")
        self._metrics.producers_replaced.inc()
        self._reachable = False
        self._unreachable_why = "the Kafka producer lost every broker: a new one is connecting"
        self._producer = self._new_producer()
        old.purge()
        self._retired.append(old)

    def _decide(self, future: asyncio.Future[KafkaError | None], error: KafkaError | None) -> None:
        """A request's outcome (in the thread serving delivery reports), for the next :meth:`_hand_over`."""
        self._outcomes.append((future, error))

    def _hand_over(self) -> None:
        """The outcomes decided since the last call, to the event loop in one wake-up (the same thread as
        :meth:`_decide`: the polling thread, or the one flushing after it stopped)."""
        if not self._outcomes:
            return
        outcomes, self._outcomes = self._outcomes, []
        loop = self._loop
        assert loop is not None
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
            loop.call_soon_threadsafe(_resolve, outcomes)

    def _probe(self) -> None:
        producer = self._producer
        assert producer is not None
        self._next_probe = time.monotonic() + _PROBE_EVERY_S
        try:
            metadata = producer.list_topics(self._topic, timeout=_PROBE_TIMEOUT_S)
        except KafkaException as exc:
            self._unreachable_why = f"no Kafka broker reachable: {exc.args[0].str() if exc.args else exc}"
            self._reachable = False
            return
        topic = metadata.topics.get(self._topic)
        if topic is None or topic.error is not None:
            why = topic.error.str() if topic is not None and topic.error is not None else "missing"
            self._unreachable_why = f"topic {self._topic}: {why}"
            self._reachable = False
            return
        if not self._reachable:
            log.info("Kafka reachable, writing to %s", self._topic)
        self._reachable = True

    def _on_error(self, error: KafkaError) -> None:
        """librdkafka's client-level errors (in the polling thread)."""
        if error.fatal():
            self._fatal = error.str()
            log.error("fatal Kafka producer error: %s", error.str())
        elif error.code() == KafkaError._ALL_BROKERS_DOWN:
            self._unreachable_why = "no Kafka broker reachable (all brokers down)"
            self._reachable = False
        log.warning("Kafka: %s", error.str())
