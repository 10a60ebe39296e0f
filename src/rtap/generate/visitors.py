"""Who is online: the shop's users and bots, and what each new session of theirs starts with.

The generator keeps a fixed number of session *slots*: the first hold humans (a share of the users is in
a session at any moment), the rest one bot each. When a visit ends, a new session of one of the slot's
users takes its place, so a user is never in two sessions at once (user i belongs to human slot i % the
number of human slots). A human has a device, browser, country and usual address drawn at their first
visit; a session comes from that address or, now and then, from another network. A bot always comes from
its own one address and clicks :data:`BOT_CLICK_FACTOR` times as often as a human.
"""

from __future__ import annotations

import random
from typing import NamedTuple

import numpy as np

from rtap.generate import fragments
from rtap.generate.catalog import (
    BOT_USER_AGENTS,
    COUNTRY_WEIGHTS,
    DEVICE_WEIGHTS,
    REFERRERS,
    USER_AGENTS,
    WeightedChoice,
    random_ip,
)
from rtap.generate.funnel import Session
from rtap.generate.ids import ID_CHUNK, UuidStream
from rtap.generate.partition import kafka_partitions
from rtap.generate.truth import GroundTruth

ACTIVE_USER_SHARE = 0.20  # human users in a session at any moment (each picks up the next send at random)
HOME_IP_SHARE = 0.85  # sessions from the user's usual address; the rest from another network
BOT_CLICK_FACTOR = 20  # a bot clicks about this many times as often as a human in session
BOT_SESSION_EVENTS = 500  # bots rotate their session cookie after this many requests

_DEVICES = WeightedChoice(DEVICE_WEIGHTS)
_COUNTRIES = WeightedChoice(COUNTRY_WEIGHTS)

# (session_id, key, partition, user draw in [0, 1), from the usual address, referrer fragment)
_Start = tuple[str, bytes, int, float, bool, bytes]


class SessionStarts:
    """What each new session starts with, prepared :data:`~rtap.generate.ids.ID_CHUNK` sessions at a time.

    A session id with its Kafka key and partition (hashed together, see kafka_partitions) and the session's
    own draws: which of its slot's users it is, whether it comes from the user's usual address, and where
    from (the referrer fragment of its first event).
    """

    def __init__(self, ids: UuidStream, rng: np.random.Generator, partitions: int) -> None:
        self._ids = ids
        self._rng = rng
        self._partitions = partitions
        weights = np.array([weight for _, weight in REFERRERS])
        self._referrer_cumulative = np.cumsum(weights) / weights.sum()
        self._referrer_fragments = np.array([fragments.referrer(url) for url, _ in REFERRERS], dtype=object)
        self._batch: list[_Start] = []

    def next(self) -> _Start:
        """(session_id, key, partition, user draw in [0, 1), from the usual address, referrer fragment)."""
        if not self._batch:
            self._batch = self._chunk()
            self._batch.reverse()  # pop() from the end hands them out in drawing order
        return self._batch.pop()

    def _chunk(self) -> list[_Start]:
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


class _User(NamedTuple):
    """A human visitor's constant fragments: user_id up to the session id, and the client fields."""

    code: int  # the truth's
    head: bytes  # ',"user_id":"…","session_id":"'
    home_client: bytes  # '","ip_address":…' to the end of the object, from the usual address
    agent: bytes  # ',"user_agent":…,"country":…' to the end of the object, after some other address


def user_id(index: int) -> str:
    return f"user-{index + 1:07d}"


class Visitors:
    """The users and bots of one shop, and the sessions that fill the slots.

    Session-level choices (users' profiles, other addresses, bots' countries) come from ``rng``, in session
    order; the bots' addresses are drawn here, at construction.
    """

    def __init__(self, rng: random.Random, truth: GroundTruth, *, users: int, bot_share: float) -> None:
        # bot_share is the bots' share of the traffic; as each bot clicks BOT_CLICK_FACTOR times as often as
        # a human in session, that share needs this many bots (at least one, and at least one human left).
        bots = 0
        if bot_share > 0 and users > 1:
            active_estimate = max(1, round(users * ACTIVE_USER_SHARE))
            bots = min(users - 1, max(1, round(bot_share * active_estimate / BOT_CLICK_FACTOR)))
        self._rng = rng
        self._truth = truth
        self.humans = users - bots
        # Slots: the first `active` hold humans, the rest one bot each.
        self.active = max(1, round(self.humans * ACTIVE_USER_SHARE))
        self.bots = bots
        # The share of sends that go to a bot slot.
        self.bot_share = bot_share if bots else 0.0
        self._users: dict[int, _User] = {}
        self._bot_ips = [random_ip(rng) for _ in range(bots)]
        self._starts: SessionStarts | None = None

    @property
    def bot_user_ids(self) -> frozenset[str]:
        """The user_ids of the bots (the last users)."""
        return frozenset(user_id(index) for index in range(self.humans, self.humans + self.bots))

    def open(self, starts: SessionStarts) -> list[Session]:
        """A first session for every slot, humans' then bots'; later sessions start from ``starts`` too."""
        self._starts = starts
        return [self.new_session(slot) for slot in range(self.active + self.bots)]

    def new_session(self, slot: int) -> Session:
        """A new session for ``slot``, whose previous one (if any) is over."""
        assert self._starts is not None
        session_id, key, partition, pick, home, referrer = self._starts.next()
        if slot >= self.active:
            bot = slot - self.active
            bot_id = user_id(self.humans + bot)
            country = _COUNTRIES.draw(self._rng.random())
            agent = fragments.agent(BOT_USER_AGENTS[bot % len(BOT_USER_AGENTS)], "desktop", country)
            tail = fragments.session_tail(fragments.user_head(bot_id), key, fragments.client(self._bot_ips[bot], agent))
            session = Session(session_id, key, partition, self._truth.user_code(bot_id), fragments.referrer(None), tail)
            session.is_bot = True
            session.remaining = BOT_SESSION_EVENTS
            return session
        # One of the slot's users (slot, slot + active, slot + 2 * active, ...).
        active = self.active
        user = self._user(slot + active * int(pick * ((self.humans - slot + active - 1) // active)))
        client = user.home_client if home else fragments.client(random_ip(self._rng), user.agent)
        return Session(session_id, key, partition, user.code, referrer, fragments.session_tail(user.head, key, client))

    def _user(self, index: int) -> _User:
        """A human's profile, drawn at their first session."""
        user = self._users.get(index)
        if user is None:
            rng = self._rng
            device = _DEVICES.draw(rng.random())
            agents = USER_AGENTS[device]
            agent = fragments.agent(agents[rng.getrandbits(8) % len(agents)], device, _COUNTRIES.draw(rng.random()))
            name = user_id(index)
            user = _User(
                self._truth.user_code(name), fragments.user_head(name), fragments.client(random_ip(rng), agent), agent
            )
            self._users[index] = user
        return user
