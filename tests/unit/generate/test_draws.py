"""The draws of the sends: Zipf-popular pages, and a fixed row per send however the sends are taken."""

from __future__ import annotations

import math
import random
from collections import Counter
from itertools import chain

import pytest

from rtap.generate.catalog import build_catalog
from rtap.generate.dirt import CLEAN, DUPLICATE_MAX_LAG, LATE, MALFORMED, DirtRates
from rtap.generate.draws import DRAW_CHUNK, SendDraws
from rtap.generate.ids import numpy_rng
from rtap.generate.truth import GroundTruth
from rtap.generate.visitors import Visitors
from rtap.settings import GeneratorSettings
from tests.support.clickstream import Run, parsed


def test_pages_are_zipf_popular(clean: Run) -> None:
    views = Counter(e["page_url"] for e in parsed(clean.records) if e["event_type"] == "page_view")
    ranks = clean.generator.catalog.pages
    s, n = clean.generator.settings.zipf_s, len(ranks)
    harmonic = sum(1 / k**s for k in range(1, n + 1))
    total = sum(views.values())
    assert views[ranks[0]] / total == pytest.approx(1 / harmonic, rel=0.08)
    # Rank-frequency slope on a log-log scale over the top 20 ranks: -s.
    xs = [math.log(rank) for rank in range(1, 21)]
    ys = [math.log(views[ranks[rank - 1]]) for rank in range(1, 21)]
    mean_x, mean_y = sum(xs) / 20, sum(ys) / 20
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum((x - mean_x) ** 2 for x in xs)
    assert slope == pytest.approx(-s, abs=0.15)


def test_each_send_takes_one_row_however_the_sends_are_split() -> None:
    settings = GeneratorSettings(users=300, duplicate_rate=0.05, late_rate=0.05, malformed_rate=0.05)
    rng = random.Random(settings.seed)
    catalog = build_catalog(rng, settings.pages, settings.products)
    visitors = Visitors(rng, GroundTruth(partitions=1, watermark_delay_s=0), users=settings.users, bot_share=0.05)

    def fresh() -> SendDraws:
        return SendDraws(numpy_rng("test-draws"), visitors, catalog, settings.zipf_s, DirtRates(settings))

    total = 2 * DRAW_CHUNK + 5  # across chunk boundaries
    whole = fresh().take(total)
    split = fresh()
    parts = [split.take(count) for count in (1, DRAW_CHUNK - 1, 0, DRAW_CHUNK + 3, 2)]
    assert whole == [list(chain.from_iterable(part[c] for part in parts)) for c in range(len(whole))]
    who, u1, u2, page, product, search, dirt, lag = whole
    assert all(len(column) == total for column in whole)
    assert set(who) == set(range(visitors.active + visitors.bots))
    assert all(0 <= u < 1 for u in u1 + u2)
    for ranks, pool in ((page, catalog.pages), (product, catalog.products), (search, catalog.search_urls)):
        assert min(ranks) == 0
        assert max(ranks) < len(pool)
    assert set(dirt) == {CLEAN, MALFORMED, LATE}
    assert set(lag) == set(range(DUPLICATE_MAX_LAG + 1))
