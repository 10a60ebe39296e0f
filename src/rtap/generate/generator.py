"""A seeded clickstream simulation that knows the truth it produces: the loop that composes the parts.

Visitors of a shop (:mod:`~rtap.generate.visitors`: users, a few bots crawling from one address each)
have sessions that walk a funnel (:mod:`~rtap.generate.funnel`) over pages and products that are popular
by Zipf's law (:mod:`~rtap.generate.catalog`). On top of that the stream carries the dirt a real one has,
at the configured rates (:mod:`~rtap.generate.dirt`): re-sent records, late events and malformed records.

Each scheduled send produces the records to send at that instant (usually one; re-sent copies that fall
due are added). :meth:`ClickstreamGenerator.generate_block` makes many sends at once and is what the
producer uses; :meth:`ClickstreamGenerator.generate` makes one. Every record is classified by the
pipeline's rules into :attr:`ClickstreamGenerator.truth`.

Determinism: the same seed and the same sequence of send times give byte-identical records, however the
sends are split into calls (randomness is drawn in fixed chunks and consumed a fixed amount per send, see
:mod:`~rtap.generate.draws`). Event and session ids come from streams seeded with the seed *and the first
send time* (:mod:`~rtap.generate.ids`), so two runs started at different times never share ids (a topic
may hold several runs), while a rerun with the same inputs reproduces every byte.

Speed: ``rtap produce`` must reach 100k records/s on one core *including* Kafka, which leaves the
generator about two microseconds per record. So the random draws of a block are made by numpy; every
JSON fragment that does not change per event is encoded once (:mod:`~rtap.generate.fragments`: a step's
event type, URL and product fields; a session's user, session and client fields), and a record is one
``bytes.join`` of five fragments; ids are formatted by numpy a few thousand at a time; the truth is
updated once per block. For the same reason :meth:`~ClickstreamGenerator.generate_block`'s loop is one
function with the parts' methods bound to locals: each extra function call per record costs a few percent.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NamedTuple

from rtap.generate import fragments
from rtap.generate.catalog import Catalog, build_catalog
from rtap.generate.dirt import CLEAN, LATE, MALFORMED, Copy, DirtRates, Malformer
from rtap.generate.draws import SendDraws
from rtap.generate.funnel import Funnel, Session
from rtap.generate.ids import UuidStream, numpy_rng
from rtap.generate.truth import EventBatch, GroundTruth
from rtap.generate.visitors import SessionStarts, Visitors
from rtap.settings import GeneratorSettings

# Daily curve: sinusoidal around 1.0, busiest in the (UTC) evening.
DAILY_AMPLITUDE = 0.6
DAILY_PEAK_HOUR_UTC = 19.0


class GeneratedRecord(NamedTuple):
    """One Kafka record: ``partition`` is where Kafka's default partitioner puts ``key``."""

    key: bytes
    value: bytes
    partition: int


class RecordBlock(NamedTuple):
    """The records of many sends, in send order, as parallel lists (what the producer loop wants)."""

    keys: list[bytes]
    values: list[bytes]
    partitions: list[int]


class ClickstreamGenerator:
    """Seeded clickstream with dirt, and its ground truth (see the module docstring)."""

    def __init__(self, settings: GeneratorSettings, *, partitions: int, watermark_delay_s: float) -> None:
        self._dirt = DirtRates(settings)  # refuses rates that leave no room for valid events
        self.settings = settings
        self.partitions = partitions
        self.truth = GroundTruth(partitions=partitions, watermark_delay_s=watermark_delay_s)
        # The catalog, then the session-level choices (users' profiles, addresses) in session order, come from
        # this one: drawing anything else from it, or in another order, would change every record.
        rng = random.Random(settings.seed)
        self.catalog: Catalog = build_catalog(rng, settings.pages, settings.products)
        self._funnel = Funnel(self.catalog, self.truth)
        self._visitors = Visitors(rng, self.truth, users=settings.users, bot_share=settings.bot_share)
        self._draws = SendDraws(
            numpy_rng(f"rtap-sends:{settings.seed}"), self._visitors, self.catalog, settings.zipf_s, self._dirt
        )
        self._malformer = Malformer()
        self._times = fragments.TimeFragments()

        # Seeded at the first send (see the module docstring).
        self._event_heads: UuidStream | None = None
        self._slots: list[Session] = []  # the session in each of the visitors' slots
        self._sends = 0
        self._due: dict[int, list[Copy]] = {}  # send number -> re-sent copies due then

    # -- public ----------------------------------------------------------------------------------------

    @property
    def bot_user_ids(self) -> frozenset[str]:
        """The user_ids of the bots (the last users): what bot detection should find."""
        return self._visitors.bot_user_ids

    def rate_multiplier(self, at: datetime) -> float:
        """Relative send rate at ``at``: a daily curve averaging 1.0 when enabled, else 1.0."""
        if not self.settings.daily_curve:
            return 1.0
        utc = at.astimezone(UTC)
        hour = utc.hour + utc.minute / 60 + utc.second / 3600
        return 1.0 + DAILY_AMPLITUDE * math.cos(2 * math.pi * (hour - DAILY_PEAK_HOUR_UTC) / 24)

    def generate(self, event_time: datetime) -> list[GeneratedRecord]:
        """The records of one scheduled send at ``event_time`` (an aware datetime), in send order."""
        if event_time.tzinfo is None:
            raise ValueError("event_time must be timezone-aware")
        # Exact: timestamp() is correctly rounded and |error| * 1e6 stays far below half a microsecond.
        block = self.generate_block([round(event_time.timestamp() * 1e6) // 1000])
        return [GeneratedRecord(*record) for record in zip(*block, strict=True)]

    def generate_block(self, times_ms: Sequence[int]) -> RecordBlock:
        """The records of one send per element of ``times_ms`` (epoch milliseconds), in send order."""
        keys: list[bytes] = []
        values: list[bytes] = []
        partitions: list[int] = []
        if not times_ms:
            return RecordBlock(keys, values, partitions)
        if self._event_heads is None:
            self._start(times_ms[0])
        assert self._event_heads is not None
        heads = self._event_heads.take(len(times_ms))
        batch = EventBatch()
        # Bound methods in locals: this loop is the generator's whole per-record cost.
        key_append, value_append, partition_append = keys.append, values.append, partitions.append
        truth_partition, truth_time = batch.partitions.append, batch.times_ms.append
        truth_type, truth_page = batch.type_codes.append, batch.page_codes.append
        truth_user, truth_session = batch.user_codes.append, batch.session_ids.append
        join = b"".join
        slots, step, new_session, due = self._slots, self._funnel.step, self._visitors.new_session, self._due
        time_of, malform, late_by_ms = self._times.of, self._malformer.malform, self._dirt.late_by_ms
        ended: list[str] = []
        sends = self._sends
        last_ms, time_fragment = -1, b""
        for head, who, u1, u2, page, product, search, dirt, lag, ms in zip(
            heads, *self._draws.take(len(times_ms)), times_ms, strict=True
        ):
            sends += 1
            session = slots[who]
            taken = step(session, u1, u2, page, product, search)
            if taken is None:  # the visit is over: a new one takes its slot
                ended.append(session.session_id)
                session = slots[who] = new_session(who)
                taken = step(session, u1, u2, page, product, search)
                assert taken is not None  # a new session always lands
            fragment, referrer, type_code, page_code, revenue = taken
            if revenue:
                fragment += session.order_fragment
            if ms != last_ms:
                last_ms, time_fragment = ms, time_of(ms)
            event_ms = ms
            if dirt == CLEAN:
                value = join((head, time_fragment, fragment, session.referrer, session.tail))
            elif dirt == LATE:
                event_ms = ms - late_by_ms
                value = join((head, time_of(event_ms), fragment, session.referrer, session.tail))
            else:
                value = malform(join((head, time_fragment, fragment, session.referrer, session.tail)), ms)
            session.referrer = referrer
            key_append(session.key)
            value_append(value)
            partition_append(session.partition)
            if dirt == MALFORMED:
                self.truth.add_dead_letter()
            else:
                truth_partition(session.partition)
                truth_time(event_ms)
                truth_type(type_code)
                truth_page(page_code)
                truth_user(session.user_code)
                truth_session(session.session_id)
                if revenue or lag:  # rare: a purchase, or a record that will be sent twice
                    position = len(batch.times_ms) - 1
                    order = (session.order_id, revenue) if revenue else None
                    if order is not None:
                        batch.purchases[position] = order
                    if lag:
                        event_id = fragments.event_id(head)
                        batch.ids[position] = (event_id, True)
                        due.setdefault(sends + lag, []).append(
                            Copy(
                                session.key,
                                value,
                                session.partition,
                                event_ms,
                                type_code,
                                page_code,
                                session.user_code,
                                session.session_id,
                                event_id,
                                order,
                            )
                        )
            copies = due.pop(sends, None)
            if copies:
                self._send_again(copies, keys, values, partitions, batch)
        self._sends = sends
        self.truth.add_events(batch)
        self.truth.end_sessions(ended)
        return RecordBlock(keys, values, partitions)

    # -- the parts of a block --------------------------------------------------------------------------

    def _start(self, first_ms: int) -> None:
        """Seed the id streams from the first send time and open the first sessions."""
        seed = self.settings.seed
        self._event_heads = UuidStream(numpy_rng(f"rtap-event-ids:{seed}:{first_ms}"), *fragments.EVENT_HEAD)
        self._funnel.order_ids = UuidStream(numpy_rng(f"rtap-order-ids:{seed}:{first_ms}"))
        session_ids = UuidStream(numpy_rng(f"rtap-session-ids:{seed}:{first_ms}"))
        starts = SessionStarts(session_ids, numpy_rng(f"rtap-sessions:{seed}"), self.partitions)
        self._slots = self._visitors.open(starts)

    @staticmethod
    def _send_again(
        copies: list[Copy], keys: list[bytes], values: list[bytes], partitions: list[int], batch: EventBatch
    ) -> None:
        """Append the re-sent ``copies`` that fall due now to the block and to the truth's batch."""
        for copy in copies:
            keys.append(copy.key)
            values.append(copy.value)
            partitions.append(copy.partition)
            batch.partitions.append(copy.partition)
            batch.times_ms.append(copy.time_ms)
            batch.type_codes.append(copy.type_code)
            batch.page_codes.append(copy.page_code)
            batch.user_codes.append(copy.user_code)
            batch.session_ids.append(copy.session_id)
            position = len(batch.times_ms) - 1
            batch.ids[position] = (copy.event_id, False)
            if copy.order is not None:
                batch.purchases[position] = copy.order
