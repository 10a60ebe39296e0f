"""A seeded clickstream simulation that knows the truth it produces.

Visitors of a shop (``settings.users``) have sessions that walk a funnel: they land on a page, search,
view products, add them to the cart (and sometimes remove them), check out and buy, and may leave at
every step (the ratios are the named constants below). Pages and products are popular by Zipf's law. A
few bots crawl at a high rate from one IP address each. On top of that the stream carries the dirt a
real one has, at the configured rates: re-sent records, late events and malformed records.

Each scheduled send produces the records to send at that instant (usually one; re-sent copies that fall
due are added). :meth:`ClickstreamGenerator.generate_block` makes many sends at once and is what the
producer uses; :meth:`ClickstreamGenerator.generate` makes one. Every record is classified by the
pipeline's rules into :attr:`ClickstreamGenerator.truth`.

Determinism: the same seed and the same sequence of send times give byte-identical records, however the
sends are split into calls (randomness is drawn in fixed chunks and consumed a fixed amount per send).
Event and session ids come from streams seeded with the seed *and the first send time*, so two runs
started at different times never share ids (a topic may hold several runs), while a rerun with the same
inputs reproduces every byte.

Speed: ``rtap produce`` must reach 100k records/s on one core *including* Kafka, which leaves the
generator about two microseconds per record. So the random draws of a block are made by numpy; every
JSON fragment that does not change per event is encoded once (a step's event type, URL and product
fields; a session's user, session and client fields), and a record is one ``bytes.join`` of five
fragments; ids are formatted by numpy a few thousand at a time; the truth is updated once per block.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import orjson

from rtap.contract import REQUIRED_FIELDS
from rtap.contract.vocabulary import PAGE_VIEW_TYPES, PURCHASE
from rtap.errors import ConfigError
from rtap.generate.catalog import (
    BOT_USER_AGENTS,
    COUNTRY_WEIGHTS,
    DEVICE_WEIGHTS,
    REFERRERS,
    USER_AGENTS,
    Catalog,
    Product,
    WeightedChoice,
    ZipfSampler,
    build_catalog,
    random_ip,
)
from rtap.generate.partition import kafka_partitions
from rtap.generate.truth import EventBatch, GroundTruth
from rtap.settings import GeneratorSettings

# -- the funnel: probabilities of the next step given the last one (the rest of each row is named) --------
BOUNCE_RATE = 0.32  # leave right after the landing page
PAGE_LEAVE = 0.20  # leave after a later page view
PAGE_TO_SEARCH = 0.35  # after a page view that did not end the session
PAGE_TO_PAGE = 0.20  # ... another content page; the rest views a product
SEARCH_ABANDON = 0.15  # leave from the search results; the rest clicks a product
PRODUCT_LEAVE = 0.25  # after a product view
PRODUCT_TO_PRODUCT = 0.35
PRODUCT_TO_PAGE = 0.10  # ... the rest (0.30) adds the product to the cart
CART_REMOVE = 0.10  # after add_to_cart (or a removal that left items in the cart)
CART_CHECKOUT = 0.45
CART_CONTINUE = 0.30  # back to browsing products; the rest (0.15) abandons the cart
EMPTY_CART_CONTINUE = 0.55  # after removing the last item: keep browsing, or leave
CHECKOUT_TO_PURCHASE = 0.68  # the rest abandons the checkout
# Quantity of an added item: 1, 2 or 3 with these cumulative probabilities.
QUANTITY_CUMULATIVE = (0.80, 0.95)

# -- who is online ---------------------------------------------------------------------------------------
ACTIVE_USER_SHARE = 0.20  # human users in a session at any moment (each picks up the next send at random)
HOME_IP_SHARE = 0.85  # sessions from the user's usual address; the rest from another network
BOT_CLICK_FACTOR = 20  # a bot clicks about this many times as often as a human in session
BOT_SESSION_EVENTS = 500  # bots rotate their session cookie after this many requests

# -- dirt ------------------------------------------------------------------------------------------------
DUPLICATE_MAX_LAG = 16  # a re-sent copy follows its original 1..16 sends later
MALFORMED_KINDS = ("broken_json", "missing_field", "wrong_type", "unknown_event_type")
UNKNOWN_EVENT_TYPES = ("wishlist_add", "hover", "PageView")
# Daily curve: sinusoidal around 1.0, busiest in the (UTC) evening.
DAILY_AMPLITUDE = 0.6
DAILY_PEAK_HOUR_UTC = 19.0

_DEVICES = WeightedChoice(DEVICE_WEIGHTS)
_COUNTRIES = WeightedChoice(COUNTRY_WEIGHTS)
# Sends whose random draws numpy makes at once; ids formatted at once.
DRAW_CHUNK = 4096
ID_CHUNK = 4096

# Funnel states: the last step of a session. _DONE: the visit is over (bought, or a bot rotated its cookie).
_NEW, _LANDED, _PAGE, _SEARCH, _PRODUCT, _CART, _REMOVED, _CHECKOUT, _PURCHASE, _DONE = range(10)
# What a send's dirt draw decided.
_CLEAN, _MALFORMED, _LATE = range(3)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A UUID's hex digits come in groups of 8-4-4-4-12, separated by dashes.
_UUID_GROUPS = (8, 4, 4, 4, 12)
_HEX_GROUPS = np.dtype([(f"group{group}", f"S{digits}") for group, digits in enumerate(_UUID_GROUPS)])
_EVENT_HEAD = (b'{"event_id":"', b'","event_time":"')
# "<time>" then the step: the millisecond part of every time fragment, precomputed.
_MILLIS = tuple(b'.%03dZ",' % millis for millis in range(1000))
_SCHEMA_END = b',"schema_version":1}'


def _json(value: Any) -> bytes:
    return orjson.dumps(value)


def _numpy_rng(label: str) -> np.random.Generator:
    """A numpy generator seeded from a text label (any seed, negative ones included, gives valid entropy)."""
    return np.random.default_rng(int.from_bytes(hashlib.sha256(label.encode()).digest(), "big"))


class _UuidStream:
    """Random ids in the version 4 UUID layout from a seeded numpy generator, each wrapped in fixed bytes.

    Reproducible (unlike ``uuid.uuid4()``), and formatted :data:`ID_CHUNK` at a time by numpy: the hex
    digits of all ids in one ``bytes.hex()``, then the digit groups, dashes and the fixed bytes copied
    as fixed-width fields of a structured array, which numpy turns into a list of bytes in C.
    """

    def __init__(self, rng: np.random.Generator, prefix: bytes = b"", suffix: bytes = b"") -> None:
        self._rng = rng
        self._prefix = prefix
        self._suffix = suffix
        fields: list[tuple[str, str]] = [("prefix", f"S{len(prefix)}")] if prefix else []
        for group, digits in enumerate(_UUID_GROUPS):
            if group:
                fields.append((f"dash{group}", "S1"))
            fields.append((f"group{group}", f"S{digits}"))
        if suffix:
            fields.append(("suffix", f"S{len(suffix)}"))
        self._layout = np.dtype(fields)
        self._buffer: list[bytes] = []
        self._position = 0

    def take(self, count: int) -> list[bytes]:
        """The next ``count`` ids."""
        while len(self._buffer) - self._position < count:
            self._buffer = self._buffer[self._position :] + self._chunk()
            self._position = 0
        taken = self._buffer[self._position : self._position + count]
        self._position += count
        return taken

    def next(self) -> bytes:
        return self.take(1)[0]

    def _chunk(self) -> list[bytes]:
        ids: list[bytes] = self.chunk_array().tolist()
        return ids

    def chunk_array(self) -> npt.NDArray[np.bytes_]:
        """The next :data:`ID_CHUNK` ids as a numpy array of fixed-width bytes (``take`` does not see them)."""
        raw = self._rng.integers(0, 256, size=(ID_CHUNK, 16), dtype=np.uint8)
        raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
        raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
        hexed = np.frombuffer(raw.tobytes().hex().encode(), dtype=_HEX_GROUPS)
        text = np.empty(ID_CHUNK, dtype=self._layout)
        if self._prefix:
            text["prefix"] = self._prefix
        for group in range(len(_UUID_GROUPS)):
            if group:
                text[f"dash{group}"] = b"-"
            text[f"group{group}"] = hexed[f"group{group}"]
        if self._suffix:
            text["suffix"] = self._suffix
        # "S" drops trailing NUL bytes, and there are none.
        return text.view(f"S{self._layout.itemsize}")


class _SessionStarts:
    """What each new session starts with, prepared :data:`ID_CHUNK` sessions at a time.

    A session id with its Kafka key and partition (hashed together, see kafka_partitions) and the session's
    own draws: which of its slot's users it is, whether it comes from the user's usual address, and where
    from (the referrer fragment of its first event).
    """

    def __init__(self, ids: _UuidStream, rng: np.random.Generator, partitions: int) -> None:
        self._ids = ids
        self._rng = rng
        self._partitions = partitions
        weights = np.array([weight for _, weight in REFERRERS])
        self._referrer_cumulative = np.cumsum(weights) / weights.sum()
        self._referrer_fragments = np.array([_referrer(url) for url, _ in REFERRERS], dtype=object)
        self._batch: list[tuple[str, bytes, int, float, bool, bytes]] = []

    def next(self) -> tuple[str, bytes, int, float, bool, bytes]:
        """(session_id, key, partition, user draw in [0, 1), from the usual address, referrer fragment)."""
        if not self._batch:
            self._batch = self._chunk()
            self._batch.reverse()  # pop() from the end hands them out in drawing order
        return self._batch.pop()

    def _chunk(self) -> list[tuple[str, bytes, int, float, bool, bytes]]:
        text = self._ids.chunk_array()
        keys: list[bytes] = text.tolist()
        session_ids: list[str] = text.astype(f"U{text.dtype.itemsize}").tolist()
        rng = self._rng
        picks: list[float] = rng.random(ID_CHUNK).tolist()
        home: list[bool] = (rng.random(ID_CHUNK) < HOME_IP_SHARE).tolist()
        where_from = np.searchsorted(self._referrer_cumulative, rng.random(ID_CHUNK), side="right")
        referrers = self._referrer_fragments[np.minimum(where_from, len(REFERRERS) - 1)].tolist()
        partitions = kafka_partitions(keys, self._partitions)
        return list(zip(session_ids, keys, partitions, picks, home, referrers, strict=True))


class _Draws:
    """Every random decision of a send, drawn by numpy :data:`DRAW_CHUNK` sends at a time.

    Each send consumes one row (who sends, two funnel draws, Zipf ranks of a page, product and search,
    its dirt, the lag of its re-sent copy or 0), whether or not it uses all of them: so the records do
    not depend on how the sends are split into blocks.
    """

    def __init__(self, generator: ClickstreamGenerator, rng: np.random.Generator) -> None:
        self._generator = generator
        self._rng = rng
        self._columns: list[list[Any]] = [[] for _ in range(8)]
        self._position = 0

    def take(self, count: int) -> list[list[Any]]:
        while len(self._columns[0]) - self._position < count:
            self._columns = [
                column[self._position :] + chunk for column, chunk in zip(self._columns, self._chunk(), strict=True)
            ]
            self._position = 0
        start, self._position = self._position, self._position + count
        return [column[start : self._position] for column in self._columns]

    def _chunk(self) -> list[list[Any]]:
        generator, rng, n = self._generator, self._rng, DRAW_CHUNK
        who = rng.integers(0, generator._active_count, size=n)
        bot_draw = rng.random(n)
        bot = generator._active_count + rng.integers(0, max(1, generator._bot_count), size=n)
        if generator._p_bot:
            who = np.where(bot_draw < generator._p_bot, bot, who)
        funnel = rng.random((2, n))
        pages = generator._page_zipf.draw_many(rng.random(n))
        products = generator._product_zipf.draw_many(rng.random(n))
        searches = generator._search_zipf.draw_many(rng.random(n))
        dirt_draw = rng.random(n)
        dirt = np.where(
            dirt_draw < generator._p_malformed,
            _MALFORMED,
            np.where(dirt_draw < generator._p_late_or_malformed, _LATE, _CLEAN),
        )
        lag = np.where(rng.random(n) < generator._p_copy, rng.integers(1, DUPLICATE_MAX_LAG + 1, size=n), 0)
        return [
            who.tolist(),
            funnel[0].tolist(),
            funnel[1].tolist(),
            pages.tolist(),
            products.tolist(),
            searches.tolist(),
            dirt.tolist(),
            lag.tolist(),
        ]


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


class _Copy(NamedTuple):
    """A record to send again a few sends later, with what the truth needs to classify it."""

    key: bytes
    value: bytes
    partition: int
    time_ms: int
    type_code: int
    page_code: int
    user_code: int
    session_id: str
    event_id: str
    order: tuple[str, int] | None


# One step of a session: (JSON fragment from "event_type" to the step's last field, the step's URL as the
# next event's referrer fragment, the truth's code of the event type, of the page if the truth counts it
# as a page view else -1, revenue in 10^-PRICE_SCALE units for purchases else 0).
_Step = tuple[bytes, bytes, int, int, int]


class _Session:
    """Per-session state and the fragments that are the same in each of its events."""

    __slots__ = (
        "cart",
        "is_bot",
        "key",
        "order_fragment",
        "order_id",
        "partition",
        "product",
        "referrer",
        "remaining",
        "session_id",
        "state",
        "tail",
        "user_code",
    )

    def __init__(
        self, session_id: str, key: bytes, partition: int, user_code: int, referrer: bytes, tail: bytes
    ) -> None:
        self.session_id = session_id
        self.key = key
        self.partition = partition
        self.user_code = user_code  # the truth's code of the user_id
        self.referrer = referrer  # the referrer fragment of the next event: where the visitor came from
        self.tail = tail  # from "user_id" to the end of the object
        self.is_bot = False
        self.state = _NEW
        self.product = 0  # catalog index of the product last viewed
        self.cart: list[tuple[int, int]] = []  # (product index, quantity)
        self.order_id = ""
        self.order_fragment = b""
        self.remaining = 0


class _User(NamedTuple):
    """A human visitor's constant fragments: user_id up to the session id, and the client fields."""

    code: int  # the truth's
    head: bytes  # ',"user_id":"…","session_id":"'
    home_client: bytes  # '","ip_address":…' to the end of the object, from the usual address
    agent: bytes  # ',"user_agent":…,"country":…' to the end of the object, after some other address


def _tail(user_id: str, session_key: bytes, client: bytes) -> bytes:
    return b',"user_id":' + _json(user_id) + b',"session_id":"' + session_key + b'"' + client


def _client(ip: str, agent: bytes) -> bytes:
    return b',"ip_address":' + _json(ip) + agent


def _agent(user_agent: str, device: str, country: str) -> bytes:
    return (
        b',"user_agent":' + _json(user_agent) + b',"device":' + _json(device) + b',"country":' + _json(country)
    ) + _SCHEMA_END


def _referrer(url: str | None) -> bytes:
    return b',"referrer":' + _json(url)


class ClickstreamGenerator:
    """Seeded clickstream with dirt, and its ground truth (see the module docstring)."""

    def __init__(self, settings: GeneratorSettings, *, partitions: int, watermark_delay_s: float) -> None:
        duplicate, late, malformed = settings.duplicate_rate, settings.late_rate, settings.malformed_rate
        # Rates are shares of all records sent. A copy is an extra record, so per send: a copy follows
        # with probability duplicate / (1 - duplicate) (per valid send: divided by the valid share), and
        # malformed / late sends are scaled by 1 / (1 - duplicate).
        if duplicate + late + malformed >= 1 or 2 * duplicate + malformed > 1:
            raise ConfigError(
                "duplicate_rate, late_rate and malformed_rate leave no room for valid events "
                f"({duplicate}, {late}, {malformed})"
            )
        self.settings = settings
        self.partitions = partitions
        self.truth = GroundTruth(partitions=partitions, watermark_delay_s=watermark_delay_s)
        self._p_malformed = malformed / (1 - duplicate)
        self._p_late_or_malformed = (malformed + late) / (1 - duplicate)
        self._p_copy = duplicate / (1 - duplicate) / (1 - self._p_malformed) if duplicate else 0.0
        self._late_by_ms = int(settings.late_by_seconds * 1000)

        # Session-level choices (users, addresses, referrers) come from this one, in session order.
        self._rng = random.Random(settings.seed)
        self.catalog: Catalog = build_catalog(self._rng, settings.pages, settings.products)
        self._page_zipf = ZipfSampler(len(self.catalog.pages), settings.zipf_s)
        self._product_zipf = ZipfSampler(len(self.catalog.products), settings.zipf_s)
        self._search_zipf = ZipfSampler(len(self.catalog.search_urls), settings.zipf_s)
        self._build_steps()

        # bot_share is the bots' share of the traffic; as each bot clicks BOT_CLICK_FACTOR times as often as
        # a human in session, that share needs this many bots (at least one, and at least one human left).
        users = settings.users
        bots = 0
        if settings.bot_share > 0 and users > 1:
            active_estimate = max(1, round(users * ACTIVE_USER_SHARE))
            bots = min(users - 1, max(1, round(settings.bot_share * active_estimate / BOT_CLICK_FACTOR)))
        self._humans = users - bots
        # Session slots: the first _active_count hold humans, the rest one bot each. Humans are spread
        # over the slots (user i belongs to slot i % _active_count), so a user is never in two sessions.
        self._active_count = max(1, round(self._humans * ACTIVE_USER_SHARE))
        self._bot_count = bots
        self._p_bot = settings.bot_share if bots else 0.0
        self._users: dict[int, _User] = {}
        self._slots: list[_Session] = []
        self._bot_ips = [random_ip(self._rng) for _ in range(bots)]
        self._draws = _Draws(self, _numpy_rng(f"rtap-sends:{settings.seed}"))

        # Seeded at the first send (see the module docstring).
        self._event_heads: _UuidStream | None = None
        self._order_ids: _UuidStream | None = None
        self._session_starts: _SessionStarts | None = None
        self._sends = 0
        self._malformed_sent = 0
        self._due: dict[int, list[_Copy]] = {}  # send number -> re-sent copies due then
        self._second = -1
        self._second_prefix = b""

    # -- public ----------------------------------------------------------------------------------------

    @property
    def bot_user_ids(self) -> frozenset[str]:
        """The user_ids of the bots (the last users): what bot detection should find."""
        return frozenset(self._user_id(index) for index in range(self._humans, self._humans + self._bot_count))

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
        slots, step, due = self._slots, self._step, self._due
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
                session = slots[who] = self._new_session(who)
                taken = step(session, u1, u2, page, product, search)
                assert taken is not None  # a new session always lands
            fragment, referrer, type_code, page_code, revenue = taken
            if revenue:
                fragment += session.order_fragment
            if ms != last_ms:
                last_ms, time_fragment = ms, self._time_fragment(ms)
            event_ms = ms
            if dirt == _CLEAN:
                value = join((head, time_fragment, fragment, session.referrer, session.tail))
            elif dirt == _LATE:
                event_ms = ms - self._late_by_ms
                value = join((head, self._time_fragment(event_ms), fragment, session.referrer, session.tail))
            else:
                value = self._malform(join((head, time_fragment, fragment, session.referrer, session.tail)), ms)
            session.referrer = referrer
            key_append(session.key)
            value_append(value)
            partition_append(session.partition)
            if dirt == _MALFORMED:
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
                        event_id = head[len(_EVENT_HEAD[0]) : len(_EVENT_HEAD[0]) + 36].decode()
                        batch.ids[position] = (event_id, True)
                        due.setdefault(sends + lag, []).append(
                            _Copy(
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
                for copy in copies:
                    key_append(copy.key)
                    value_append(copy.value)
                    partition_append(copy.partition)
                    truth_partition(copy.partition)
                    truth_time(copy.time_ms)
                    truth_type(copy.type_code)
                    truth_page(copy.page_code)
                    truth_user(copy.user_code)
                    truth_session(copy.session_id)
                    position = len(batch.times_ms) - 1
                    batch.ids[position] = (copy.event_id, False)
                    if copy.order is not None:
                        batch.purchases[position] = copy.order
        self._sends = sends
        self.truth.add_events(batch)
        self.truth.end_sessions(ended)
        return RecordBlock(keys, values, partitions)

    # -- sessions --------------------------------------------------------------------------------------

    def _start(self, first_ms: int) -> None:
        """Seed the id streams from the first send time and open the first sessions."""
        seed = self.settings.seed
        self._event_heads = _UuidStream(_numpy_rng(f"rtap-event-ids:{seed}:{first_ms}"), *_EVENT_HEAD)
        self._order_ids = _UuidStream(_numpy_rng(f"rtap-order-ids:{seed}:{first_ms}"))
        session_ids = _UuidStream(_numpy_rng(f"rtap-session-ids:{seed}:{first_ms}"))
        self._session_starts = _SessionStarts(session_ids, _numpy_rng(f"rtap-sessions:{seed}"), self.partitions)
        self._slots = [self._new_session(slot) for slot in range(self._active_count + self._bot_count)]

    def _time_fragment(self, ms: int) -> bytes:
        """``<event_time>",`` for epoch millisecond ``ms``: the contract's canonical form (format_event_time)."""
        second = ms // 1000
        if second != self._second:
            self._second = second
            self._second_prefix = (_EPOCH + timedelta(seconds=second)).strftime("%Y-%m-%dT%H:%M:%S").encode()
        return self._second_prefix + _MILLIS[ms - second * 1000]

    @staticmethod
    def _user_id(index: int) -> str:
        return f"user-{index + 1:07d}"

    def _user(self, index: int) -> _User:
        """A human's profile, drawn at their first session."""
        user = self._users.get(index)
        if user is None:
            rng = self._rng
            device = _DEVICES.draw(rng.random())
            agents = USER_AGENTS[device]
            agent = _agent(agents[rng.getrandbits(8) % len(agents)], device, _COUNTRIES.draw(rng.random()))
            user_id = self._user_id(index)
            head = b',"user_id":' + _json(user_id) + b',"session_id":"'
            user = _User(self.truth.user_code(user_id), head, _client(random_ip(rng), agent), agent)
            self._users[index] = user
        return user

    def _new_session(self, slot: int) -> _Session:
        assert self._session_starts is not None
        session_id, key, partition, pick, home, referrer = self._session_starts.next()
        if slot >= self._active_count:
            bot = slot - self._active_count
            user_id = self._user_id(self._humans + bot)
            country = _COUNTRIES.draw(self._rng.random())
            agent = _agent(BOT_USER_AGENTS[bot % len(BOT_USER_AGENTS)], "desktop", country)
            tail = _tail(user_id, key, _client(self._bot_ips[bot], agent))
            session = _Session(session_id, key, partition, self.truth.user_code(user_id), _referrer(None), tail)
            session.is_bot = True
            session.remaining = BOT_SESSION_EVENTS
            return session
        # One of the slot's users (slot, slot + active, slot + 2 * active, ...).
        active = self._active_count
        user = self._user(slot + active * int(pick * ((self._humans - slot + active - 1) // active)))
        client = user.home_client if home else _client(random_ip(self._rng), user.agent)
        return _Session(session_id, key, partition, user.code, referrer, b"".join((user.head, key, b'"', client)))

    # -- the funnel ------------------------------------------------------------------------------------

    def _build_steps(self) -> None:
        """Encode every step that does not involve a cart once: pages, searches, product views, checkout."""
        catalog = self.catalog
        self._page_steps = [self._plain_step("page_view", url) for url in catalog.pages]
        self._search_steps = [self._plain_step("search", url) for url in catalog.search_urls]
        self._view_steps = [self._product_step("product_view", index, 1) for index in range(len(catalog.products))]
        self._checkout_step = self._plain_step("checkout", catalog.checkout_url)
        # (event_type, product index, quantity) -> step, made when first needed: carts are rarer than views.
        self._cart_steps: dict[tuple[str, int, int], _Step] = {}

    def _plain_step(self, event_type: str, url: str) -> _Step:
        fragment = b'"event_type":' + _json(event_type) + b',"page_url":' + _json(url)
        return fragment, _referrer(url), *self._truth_codes(event_type, url), 0

    def _truth_codes(self, event_type: str, url: str) -> tuple[int, int]:
        page_code = self.truth.page_code(url) if event_type in PAGE_VIEW_TYPES else -1
        return self.truth.type_code(event_type), page_code

    def _product_step(self, event_type: str, index: int, quantity: int) -> _Step:
        product: Product = self.catalog.products[index]
        url = self.catalog.confirmation_url if event_type == PURCHASE else product.url
        fragment = (
            b'"event_type":'
            + _json(event_type)
            + b',"page_url":'
            + _json(url)
            + b',"product_id":'
            + _json(product.product_id)
            + b',"category":'
            + _json(product.category)
            + b',"price":'
            + _json(product.price)
            + b',"quantity":'
            + _json(quantity)
        )
        revenue = product.price_units * quantity if event_type == PURCHASE else 0
        return fragment, _referrer(url), *self._truth_codes(event_type, url), revenue

    def _cart_step(self, event_type: str, index: int, quantity: int) -> _Step:
        step = self._cart_steps.get((event_type, index, quantity))
        if step is None:
            step = self._cart_steps[event_type, index, quantity] = self._product_step(event_type, index, quantity)
        return step

    def _step(self, session: _Session, u1: float, u2: float, page: int, product: int, search: int) -> _Step | None:
        """Advance ``session`` by one event; None when the visit is over. The rest are the send's draws."""
        state = session.state
        if state == _DONE:
            return None
        if session.is_bot:
            session.remaining -= 1
            if session.remaining <= 0:
                session.state = _DONE
            if u1 < 0.5:
                return self._page_steps[int(u2 * len(self._page_steps))]
            return self._view_steps[int(u2 * len(self._view_steps))]
        if state == _NEW:
            session.state = _LANDED
            return self._page_steps[page]
        if state in (_LANDED, _PAGE):
            if u1 < (BOUNCE_RATE if state == _LANDED else PAGE_LEAVE):
                return None
            if u2 < PAGE_TO_SEARCH:
                session.state = _SEARCH
                return self._search_steps[search]
            if u2 < PAGE_TO_SEARCH + PAGE_TO_PAGE:
                session.state = _PAGE
                return self._page_steps[page]
            return self._view_product(session, product)
        if state == _SEARCH:
            if u1 < SEARCH_ABANDON:
                return None
            return self._view_product(session, product)
        if state == _PRODUCT:
            if u1 < PRODUCT_LEAVE:
                return None
            if u1 < PRODUCT_LEAVE + PRODUCT_TO_PRODUCT:
                return self._view_product(session, product)
            if u1 < PRODUCT_LEAVE + PRODUCT_TO_PRODUCT + PRODUCT_TO_PAGE:
                session.state = _PAGE
                return self._page_steps[page]
            quantity = 1 if u2 < QUANTITY_CUMULATIVE[0] else 2 if u2 < QUANTITY_CUMULATIVE[1] else 3
            session.cart.append((session.product, quantity))
            session.state = _CART
            return self._cart_step("add_to_cart", session.product, quantity)
        if state == _CART or (state == _REMOVED and session.cart):
            if u1 < CART_REMOVE:
                removed, quantity = session.cart.pop()
                session.state = _REMOVED
                return self._cart_step("remove_from_cart", removed, quantity)
            if u1 < CART_REMOVE + CART_CHECKOUT:
                session.state = _CHECKOUT
                return self._checkout_step
            if u1 < CART_REMOVE + CART_CHECKOUT + CART_CONTINUE:
                return self._view_product(session, product)
            return None
        if state == _REMOVED:  # the cart is empty
            if u1 < EMPTY_CART_CONTINUE:
                return self._view_product(session, product)
            return None
        if state == _CHECKOUT:
            if u1 >= CHECKOUT_TO_PURCHASE:
                return None
            assert self._order_ids is not None
            order_id = self._order_ids.next()
            session.order_id = order_id.decode()
            session.order_fragment = b',"order_id":"' + order_id + b'"'
            session.state = _PURCHASE
        # _PURCHASE: one purchase event per cart line, all with the session's order_id; then the visit ends.
        bought, quantity = session.cart.pop(0)
        if not session.cart:
            session.state = _DONE
        return self._cart_step("purchase", bought, quantity)

    def _view_product(self, session: _Session, product: int) -> _Step:
        session.product = product
        session.state = _PRODUCT
        return self._view_steps[product]

    # -- dirt ------------------------------------------------------------------------------------------

    def _malform(self, valid: bytes, ms: int) -> bytes:
        """A record that breaks the contract, cycling evenly through :data:`MALFORMED_KINDS`."""
        count = self._malformed_sent
        self._malformed_sent += 1
        kind = MALFORMED_KINDS[count % len(MALFORMED_KINDS)]
        round_ = count // len(MALFORMED_KINDS)
        if kind == "broken_json":  # cut mid-object: a truncated send
            return valid[: len(valid) // 2]
        event = orjson.loads(valid)
        if kind == "missing_field":
            del event[REQUIRED_FIELDS[round_ % len(REQUIRED_FIELDS)]]
        elif kind == "wrong_type":
            choice = round_ % 3
            if choice == 0:
                event["user_id"] = int(event["user_id"].rsplit("-", 1)[1])
            elif choice == 1:
                event["event_time"] = ms
            else:
                event["page_url"] = {"href": event["page_url"]}
        else:
            event["event_type"] = UNKNOWN_EVENT_TYPES[round_ % len(UNKNOWN_EVENT_TYPES)]
        return orjson.dumps(event)
