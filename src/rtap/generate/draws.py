"""Every random decision of a send, drawn by numpy :data:`DRAW_CHUNK` sends at a time.

Two reasons for one fixed row of draws per send. Speed: numpy draws a chunk for all sends at once, in C.
Determinism: each send consumes its row (who sends, two funnel draws, Zipf ranks of a page, a product and
a search, its dirt and the lag of its re-sent copy or 0) whether or not it uses all of it, so the records do
not depend on how the sends are split into blocks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rtap.generate.catalog import Catalog, ZipfSampler
from rtap.generate.dirt import DirtRates
from rtap.generate.visitors import Visitors

# Sends whose draws numpy makes at once.
DRAW_CHUNK = 4096


class SendDraws:
    """The draws of the next sends, as columns: who, u1, u2, page, product, search, dirt, lag.

    ``who`` is a session slot of ``visitors`` (a bot's with the visitors' bot share); page, product and search
    are Zipf ranks (indexes into the catalog's pages, products and search URLs, which are in popularity order).
    """

    def __init__(
        self, rng: np.random.Generator, visitors: Visitors, catalog: Catalog, zipf_s: float, dirt: DirtRates
    ) -> None:
        self._rng = rng
        self._visitors = visitors
        self._dirt = dirt
        self._page_zipf = ZipfSampler(len(catalog.pages), zipf_s)
        self._product_zipf = ZipfSampler(len(catalog.products), zipf_s)
        self._search_zipf = ZipfSampler(len(catalog.search_urls), zipf_s)
        self._columns: list[list[Any]] = [[] for _ in range(8)]
        self._position = 0

    def take(self, count: int) -> list[list[Any]]:
        """The columns of the next ``count`` sends."""
        while len(self._columns[0]) - self._position < count:
            self._columns = [
                column[self._position :] + chunk for column, chunk in zip(self._columns, self._chunk(), strict=True)
            ]
            self._position = 0
        start, self._position = self._position, self._position + count
        return [column[start : self._position] for column in self._columns]

    def _chunk(self) -> list[list[Any]]:
        visitors, rng, n = self._visitors, self._rng, DRAW_CHUNK
        who = rng.integers(0, visitors.active, size=n)
        bot_draw = rng.random(n)
        bot = visitors.active + rng.integers(0, max(1, visitors.bots), size=n)
        if visitors.bot_share:
            who = np.where(bot_draw < visitors.bot_share, bot, who)
        funnel = rng.random((2, n))
        pages = self._page_zipf.draw_many(rng.random(n))
        products = self._product_zipf.draw_many(rng.random(n))
        searches = self._search_zipf.draw_many(rng.random(n))
        dirt, lag = self._dirt.draw(rng, n)
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
