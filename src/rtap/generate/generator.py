"""A seeded clickstream simulation that knows the truth it produces.

Visitors of a shop (``settings.users``) have sessions that walk a funnel: they land on a page, search,
view products, add them to the cart (and sometimes remove them), check out and buy, and may leave at
every step (the ratios are the named constants below). Pages and products are popular by Zipf's law. A
few bots crawl at a high rate from one IP address each. On top of that the stream carries the dirt a
real one has, at the configured rates: re-sent records, late events and malformed records.

Each :meth:`ClickstreamGenerator.generate` call is one scheduled send: it returns the records to send
for that instant (usually one; re-sent copies that fall due are added). Every record is classified
immediately by the pipeline's rules into :attr:`ClickstreamGenerator.truth`.

Determinism: the same seed and the same sequence of ``event_time`` arguments give byte-identical
records. Event and session ids come from a second RNG seeded with the seed *and the first event_time*,
so two runs started at different times never share ids (a topic may hold several runs), while a rerun
with the same inputs reproduces every byte.

Speed: the producer needs >= 100k records/s on one core including Kafka, so the per-event path only
indexes precomputed pools, reuses per-session values (Kafka key, partition, client fields), formats
one timestamp per millisecond and builds ids from random bits.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, NamedTuple

import orjson

from rtap.contract import REQUIRED_FIELDS, format_event_time
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
from rtap.generate.truth import GroundTruth
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
_REFERRERS = WeightedChoice(REFERRERS)
ID_BATCH = 1024
# UUID version 4 layout: the 13th hex digit is 4, the 17th carries the RFC 4122 variant (10xx).
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}

# Funnel states: the last step of a session. _DONE: the visit is over (bought, or a bot rotated its cookie).
_NEW, _LANDED, _PAGE, _SEARCH, _PRODUCT, _CART, _REMOVED, _CHECKOUT, _PURCHASE, _DONE = range(10)


class _IdPool:
    """Random ids in the version 4 UUID layout from a seeded RNG, formatted a batch at a time.

    Reproducible (unlike ``uuid.uuid4()``), and batching turns one RNG call and one hex conversion per id
    into one per :data:`ID_BATCH` ids.
    """

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._batch: list[str] = []

    def next(self) -> str:
        if not self._batch:
            text = self._rng.randbytes(16 * ID_BATCH).hex()
            self._batch = [
                f"{text[i : i + 8]}-{text[i + 8 : i + 12]}-4{text[i + 13 : i + 16]}-"
                f"{_VARIANT[text[i + 16]]}{text[i + 17 : i + 20]}-{text[i + 20 : i + 32]}"
                for i in range(0, 32 * ID_BATCH, 32)
            ]
            self._batch.reverse()  # pop() from the end hands them out in drawing order
        return self._batch.pop()


class _SessionKeys:
    """Session ids with their Kafka key and partition, hashed a batch at a time (see kafka_partitions)."""

    def __init__(self, ids: _IdPool, partitions: int) -> None:
        self._ids = ids
        self._partitions = partitions
        self._batch: list[tuple[str, bytes, int]] = []

    def next(self) -> tuple[str, bytes, int]:
        if not self._batch:
            session_ids = [self._ids.next() for _ in range(ID_BATCH)]
            keys = [session_id.encode() for session_id in session_ids]
            self._batch = list(zip(session_ids, keys, kafka_partitions(keys, self._partitions), strict=True))
            self._batch.reverse()
        return self._batch.pop()


class GeneratedRecord(NamedTuple):
    """One Kafka record: ``partition`` is where Kafka's default partitioner puts ``key``."""

    key: bytes
    value: bytes
    partition: int


class _Session:
    """Per-session values computed once: ids, Kafka key and partition, the client fields of every event."""

    __slots__ = (
        "cart",
        "is_bot",
        "key",
        "last_url",
        "order_id",
        "partition",
        "product",
        "remaining",
        "session_id",
        "state",
        "template",
        "user_id",
        "user_index",
    )

    def __init__(self, keys: tuple[str, bytes, int], user_index: int, user_id: str, client: dict[str, Any]) -> None:
        self.session_id, self.key, self.partition = keys
        self.user_index = user_index
        self.user_id = user_id
        # The event template: per-event keys first (filled in per event), then this session's constant fields.
        # dict.copy() of it is much cheaper than building each event's dict from scratch.
        self.template: dict[str, Any] = {
            "event_id": None,
            "event_type": None,
            "event_time": None,
            "page_url": None,
            "referrer": None,
            "user_id": user_id,
            "session_id": self.session_id,
            **client,
            "schema_version": 1,
        }
        self.is_bot = False
        self.state = _NEW
        self.last_url: str | None = None
        self.product: Product | None = None
        self.cart: list[tuple[Product, int]] = []
        self.order_id: str | None = None
        self.remaining = 0


class _Profile(NamedTuple):
    device: str
    user_agent: str
    country: str
    home_ip: str


# One step of a session: (event_type, page_url, product, quantity).
_Step = tuple[str, str, Product | None, int]
# tuple.__new__ directly: a NamedTuple's own __new__ is a Python function, several times slower per record.
_new_record = partial(tuple.__new__, GeneratedRecord)
# What the truth needs of a valid record, in GroundTruth.add_event's argument order (without the hint).
_TruthArgs = tuple[int, int, str, str, str, str, str, str | None, int]


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
        self._late_by = timedelta(seconds=settings.late_by_seconds)
        self._late_by_ms = int(settings.late_by_seconds * 1000)

        self._rng = random.Random(settings.seed)
        # Seeded at the first send (see the module docstring).
        self._event_ids: _IdPool | None = None
        self._session_keys: _SessionKeys | None = None
        self.catalog: Catalog = build_catalog(self._rng, settings.pages, settings.products)
        self._page_zipf = ZipfSampler(len(self.catalog.pages), settings.zipf_s)
        self._product_zipf = ZipfSampler(len(self.catalog.products), settings.zipf_s)
        self._search_zipf = ZipfSampler(len(self.catalog.search_urls), settings.zipf_s)

        # bot_share is the bots' share of the traffic; as each bot clicks BOT_CLICK_FACTOR times as often as
        # a human in session, that share needs this many bots (at least one, and at least one human left).
        users = settings.users
        bots = 0
        if settings.bot_share > 0 and users > 1:
            active_estimate = max(1, round(users * ACTIVE_USER_SHARE))
            bots = min(users - 1, max(1, round(settings.bot_share * active_estimate / BOT_CLICK_FACTOR)))
        self._humans = users - bots
        self._active_count = max(1, round(self._humans * ACTIVE_USER_SHARE))
        self._bot_count = bots
        self._p_bot = settings.bot_share if bots else 0.0
        self._profiles: dict[int, _Profile] = {}
        self._active: list[_Session] = []
        self._active_users: set[int] = set()
        self._bots: list[_Session] = []
        self._bot_ips = [random_ip(self._rng) for _ in range(bots)]

        self._sends = 0
        self._malformed_sent = 0
        self._due: dict[int, list[tuple[GeneratedRecord, _TruthArgs]]] = {}
        self._ts_ms = -1
        self._ts = ""

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
        ms = round(event_time.timestamp() * 1e6) // 1000
        new_id = (self._event_ids or self._start(ms)).next
        rng = self._rng.random
        self._sends += 1
        session, (event_type, url, product, quantity) = self._next_step(rng)
        if ms != self._ts_ms:
            self._ts_ms, self._ts = ms, format_event_time(event_time)
        event_ts, event_ms = self._ts, ms
        dirt = rng()
        if self._p_malformed <= dirt < self._p_late_or_malformed:
            event_ms = ms - self._late_by_ms
            event_ts = format_event_time(event_time - self._late_by)
        event_id = new_id()
        event = session.template.copy()
        event["event_id"] = event_id
        event["event_type"] = event_type
        event["event_time"] = event_ts
        event["page_url"] = url
        event["referrer"] = session.last_url
        revenue = 0
        if product is not None:
            event["product_id"] = product.product_id
            event["category"] = product.category
            event["price"] = product.price
            event["quantity"] = quantity
            if event_type == "purchase":
                event["order_id"] = session.order_id
                revenue = product.price_units * quantity
        session.last_url = url
        truth = self.truth
        if dirt < self._p_malformed:
            record = _new_record((session.key, self._malform(event), session.partition))
            truth.add_dead_letter()
            records = [record]
        else:
            record = _new_record((session.key, orjson.dumps(event), session.partition))
            args: _TruthArgs = (
                session.partition,
                event_ms,
                event_id,
                event_type,
                session.user_id,
                session.session_id,
                url,
                session.order_id if event_type == "purchase" else None,
                revenue,
            )
            copy = self._p_copy > 0 and rng() < self._p_copy
            if copy:
                due = self._sends + 1 + self._rng.getrandbits(4) % DUPLICATE_MAX_LAG
                self._due.setdefault(due, []).append((record, args))
            truth.add_event(*args, copy)
            records = [record]
        due_copies = self._due.pop(self._sends, None)
        if due_copies:
            for copy_record, copy_args in due_copies:
                truth.add_event(*copy_args, False)
                records.append(copy_record)
        return records

    # -- sessions --------------------------------------------------------------------------------------

    def _start(self, first_ms: int) -> _IdPool:
        """Seed the id streams from the first send time and open the first sessions."""
        self._event_ids = _IdPool(random.Random(f"rtap-event-ids:{self.settings.seed}:{first_ms}"))
        self._session_keys = _SessionKeys(
            _IdPool(random.Random(f"rtap-session-ids:{self.settings.seed}:{first_ms}")), self.partitions
        )
        self._active = [self._new_human_session() for _ in range(self._active_count)]
        self._bots = [self._new_bot_session(index) for index in range(self._bot_count)]
        return self._event_ids

    def _next_event_id(self) -> str:
        assert self._event_ids is not None
        return self._event_ids.next()

    def _next_session_keys(self) -> tuple[str, bytes, int]:
        assert self._session_keys is not None
        return self._session_keys.next()

    @staticmethod
    def _user_id(index: int) -> str:
        return f"user-{index + 1:07d}"

    def _profile(self, user_index: int) -> _Profile:
        profile = self._profiles.get(user_index)
        if profile is None:
            rng = self._rng
            device = _DEVICES.draw(rng.random())
            agents = USER_AGENTS[device]
            profile = _Profile(
                device,
                agents[rng.getrandbits(8) % len(agents)],
                _COUNTRIES.draw(rng.random()),
                random_ip(rng),
            )
            self._profiles[user_index] = profile
        return profile

    def _new_human_session(self) -> _Session:
        rng = self._rng
        while True:  # an idle user: at most ACTIVE_USER_SHARE of them are busy, so this ends quickly
            user_index = int(rng.random() * self._humans)
            if user_index not in self._active_users:
                break
        self._active_users.add(user_index)
        profile = self._profile(user_index)
        ip = profile.home_ip if rng.random() < HOME_IP_SHARE else random_ip(rng)
        client = {"ip_address": ip, "user_agent": profile.user_agent, "device": profile.device}
        client["country"] = profile.country
        session = _Session(self._next_session_keys(), user_index, self._user_id(user_index), client)
        session.last_url = _REFERRERS.draw(rng.random())
        return session

    def _new_bot_session(self, bot: int) -> _Session:
        rng = self._rng
        user_index = self._humans + bot
        client = {
            "ip_address": self._bot_ips[bot],
            "user_agent": BOT_USER_AGENTS[bot % len(BOT_USER_AGENTS)],
            "device": "desktop",
            "country": _COUNTRIES.draw(rng.random()),
        }
        session = _Session(self._next_session_keys(), user_index, self._user_id(user_index), client)
        session.is_bot = True
        session.remaining = BOT_SESSION_EVENTS
        return session

    def _next_step(self, rng: Any) -> tuple[_Session, _Step]:
        """The session that sends next and its step. A session whose visit is over is replaced first."""
        if self._p_bot and rng() < self._p_bot:
            sessions, index = self._bots, int(rng() * self._bot_count)
        else:
            sessions, index = self._active, int(rng() * self._active_count)
        session = sessions[index]
        step = self._step(session, rng)
        if step is None:
            # The visit is over: the truth may forget the session, and a new one takes its slot.
            self.truth.end_session(session.session_id)
            if session.is_bot:
                session = sessions[index] = self._new_bot_session(index)
            else:
                self._active_users.discard(session.user_index)
                session = sessions[index] = self._new_human_session()
            step = self._step(session, rng)
            assert step is not None  # a new session always lands
        return session, step

    def _step(self, session: _Session, rng: Any) -> _Step | None:
        """Advance ``session`` by one event: (event_type, page_url, product, quantity); None when it leaves."""
        catalog = self.catalog
        state = session.state
        if state == _DONE:
            return None
        if session.is_bot:
            session.remaining -= 1
            if session.remaining <= 0:
                session.state = _DONE
            if rng() < 0.5:
                return "page_view", catalog.pages[int(rng() * len(catalog.pages))], None, 0
            product = catalog.products[int(rng() * len(catalog.products))]
            return "product_view", product.url, product, 1
        draw = rng()
        if state == _NEW:
            session.state = _LANDED
            return "page_view", catalog.pages[self._page_zipf.draw(rng())], None, 0
        if state in (_LANDED, _PAGE):
            if draw < (BOUNCE_RATE if state == _LANDED else PAGE_LEAVE):
                return None
            draw = rng()
            if draw < PAGE_TO_SEARCH:
                session.state = _SEARCH
                return "search", catalog.search_urls[self._search_zipf.draw(rng())], None, 0
            if draw < PAGE_TO_SEARCH + PAGE_TO_PAGE:
                session.state = _PAGE
                return "page_view", catalog.pages[self._page_zipf.draw(rng())], None, 0
            return self._view_product(session, rng)
        if state == _SEARCH:
            if draw < SEARCH_ABANDON:
                return None
            return self._view_product(session, rng)
        if state == _PRODUCT:
            if draw < PRODUCT_LEAVE:
                return None
            if draw < PRODUCT_LEAVE + PRODUCT_TO_PRODUCT:
                return self._view_product(session, rng)
            if draw < PRODUCT_LEAVE + PRODUCT_TO_PRODUCT + PRODUCT_TO_PAGE:
                session.state = _PAGE
                return "page_view", catalog.pages[self._page_zipf.draw(rng())], None, 0
            viewed = session.product
            assert viewed is not None
            quantity_draw = rng()
            quantity = (
                1 if quantity_draw < QUANTITY_CUMULATIVE[0] else 2 if quantity_draw < QUANTITY_CUMULATIVE[1] else 3
            )
            session.cart.append((viewed, quantity))
            session.state = _CART
            return "add_to_cart", viewed.url, viewed, quantity
        if state == _CART or (state == _REMOVED and session.cart):
            if draw < CART_REMOVE:
                product, quantity = session.cart.pop()
                session.state = _REMOVED
                return "remove_from_cart", product.url, product, quantity
            if draw < CART_REMOVE + CART_CHECKOUT:
                session.state = _CHECKOUT
                return "checkout", catalog.checkout_url, None, 0
            if draw < CART_REMOVE + CART_CHECKOUT + CART_CONTINUE:
                return self._view_product(session, rng)
            return None
        if state == _REMOVED:  # the cart is empty
            if draw < EMPTY_CART_CONTINUE:
                return self._view_product(session, rng)
            return None
        if state == _CHECKOUT:
            if draw >= CHECKOUT_TO_PURCHASE:
                return None
            session.order_id = self._next_event_id()
            session.state = _PURCHASE
        # _PURCHASE: one purchase event per cart line, all with the session's order_id; then the visit ends.
        product, quantity = session.cart.pop(0)
        if not session.cart:
            session.state = _DONE
        return "purchase", catalog.confirmation_url, product, quantity

    def _view_product(self, session: _Session, rng: Any) -> _Step:
        product = self.catalog.products[self._product_zipf.draw(rng())]
        session.product = product
        session.state = _PRODUCT
        return "product_view", product.url, product, 1

    # -- dirt ------------------------------------------------------------------------------------------

    def _malform(self, event: dict[str, Any]) -> bytes:
        """A record that breaks the contract, cycling evenly through :data:`MALFORMED_KINDS`."""
        count = self._malformed_sent
        self._malformed_sent += 1
        kind = MALFORMED_KINDS[count % len(MALFORMED_KINDS)]
        round_ = count // len(MALFORMED_KINDS)
        if kind == "broken_json":  # cut mid-object: a truncated send
            encoded = orjson.dumps(event)
            return encoded[: len(encoded) // 2]
        if kind == "missing_field":
            del event[REQUIRED_FIELDS[round_ % len(REQUIRED_FIELDS)]]
        elif kind == "wrong_type":
            choice = round_ % 3
            if choice == 0:
                event["user_id"] = int(event["user_id"].rsplit("-", 1)[1])
            elif choice == 1:
                event["event_time"] = self._ts_ms
            else:
                event["page_url"] = {"href": event["page_url"]}
        else:
            event["event_type"] = UNKNOWN_EVENT_TYPES[round_ % len(UNKNOWN_EVENT_TYPES)]
        return orjson.dumps(event)
