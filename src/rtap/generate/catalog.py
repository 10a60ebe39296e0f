"""The simulated shop and its visitors: pages, products, search terms, devices, countries, addresses.

Everything here is built once per generator from its seeded RNG, so the hot loop only indexes into
precomputed pools. Popularity follows Zipf's law (weight of rank k is 1/k^s), the classic shape of web
page and product popularity.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from dataclasses import dataclass
from decimal import Decimal
from itertools import accumulate
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

from rtap.contract import PRICE_SCALE

SHOP = "https://shop.example"
CATEGORIES = (
    "shoes",
    "jackets",
    "shirts",
    "trousers",
    "bags",
    "watches",
    "sunglasses",
    "sportswear",
    "kids",
    "home",
    "beauty",
    "electronics",
)
_SECTIONS = ("deals", "new", "bestsellers", "brands", "help/shipping", "help/returns", "stores", "gift-cards")
SEARCH_TERMS = (
    "running shoes",
    "rain jacket",
    "white sneakers",
    "leather bag",
    "smart watch",
    "linen shirt",
    "yoga pants",
    "sunglasses",
    "kids shoes",
    "winter coat",
    "backpack",
    "headphones",
    "desk lamp",
    "perfume",
    "jeans",
    "hoodie",
    "socks",
    "gift ideas",
    "sale",
    "dress",
)
# (value, weight): where visitors arrive from; None is direct traffic (no referrer).
REFERRERS: tuple[tuple[str | None, float], ...] = (
    (None, 0.34),
    ("https://www.google.com/", 0.30),
    ("https://www.bing.com/", 0.05),
    ("https://duckduckgo.com/", 0.03),
    ("https://www.facebook.com/", 0.08),
    ("https://www.instagram.com/", 0.07),
    ("https://t.co/", 0.03),
    ("https://newsletter.shop.example/weekly?utm_source=newsletter", 0.06),
    ("https://blog.example.org/best-of-the-year", 0.04),
)
DEVICE_WEIGHTS: tuple[tuple[str, float], ...] = (("desktop", 0.42), ("mobile", 0.50), ("tablet", 0.08))
USER_AGENTS: dict[str, tuple[str, ...]] = {
    "desktop": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/18.1 Safari/605.1.15",
        "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Edg/131.0",
    ),
    "mobile": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
        "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/130.0 Mobile Safari/537.36",
    ),
    "tablet": (
        "Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/18.1 Mobile/15E148",
        "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    ),
}
BOT_USER_AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0 Safari/537.36",
    "python-requests/2.32.3",
    "Scrapy/2.12.0 (+https://scrapy.org)",
)
COUNTRY_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("US", 0.30),
    ("DE", 0.12),
    ("GB", 0.10),
    ("FR", 0.08),
    ("NL", 0.05),
    ("ES", 0.05),
    ("IT", 0.05),
    ("PL", 0.04),
    ("SE", 0.03),
    ("CA", 0.05),
    ("BR", 0.04),
    ("IN", 0.04),
    ("JP", 0.03),
    ("AU", 0.02),
)
# First octets of public IPv4 blocks (no private, loopback, multicast or reserved ranges).
_IPV4_FIRST_OCTETS = (23, 31, 37, 45, 62, 77, 78, 81, 86, 91, 94, 109, 151, 176, 185, 188, 193, 203, 212, 217)
_IPV6_PREFIXES = ("2a02", "2a01", "2001", "2600", "2a00", "2804")
IPV6_SHARE = 0.25
# Prices in cents: log-normal around ~30 with a long tail, and retail endings (.99, .49, .00).
_PRICE_LOG_MEAN = 3.4
_PRICE_LOG_SIGMA = 0.9
_PRICE_ENDINGS = (99, 99, 99, 49, 0)
_MIN_PRICE_CENTS = 199
_MAX_PRICE_CENTS = 250_000

T = TypeVar("T")


class ZipfSampler:
    """Draw ranks 0..n-1 with probability proportional to 1/(rank+1)^s: one bisect over cumulative weights."""

    def __init__(self, n: int, s: float) -> None:
        weights = [1.0 / (rank**s) for rank in range(1, n + 1)]
        self.total = math.fsum(weights)
        self.shares = tuple(w / self.total for w in weights)
        self._cumulative = list(accumulate(weights))
        self._cumulative_array = np.array(self._cumulative)
        self._last = n - 1

    def draw(self, rng_random: float) -> int:
        """The rank for a uniform draw in [0, 1) (the caller passes ``rng.random()``)."""
        return min(bisect_right(self._cumulative, rng_random * self.total), self._last)

    def draw_many(self, uniforms: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
        """:meth:`draw` of every element of ``uniforms``, in one vectorised search."""
        ranks = np.searchsorted(self._cumulative_array, uniforms * self.total, side="right")
        return np.minimum(ranks, self._last)


@dataclass(frozen=True)
class Product:
    product_id: str
    category: str
    url: str
    price: float  # what goes on the wire: 2 decimals, written by orjson as the shortest exact repr
    price_units: int  # the same price in 10^-PRICE_SCALE units, for exact revenue


@dataclass(frozen=True)
class Catalog:
    pages: tuple[str, ...]  # by popularity rank
    products: tuple[Product, ...]  # by popularity rank
    search_urls: tuple[str, ...]
    checkout_url: str
    confirmation_url: str


def build_catalog(rng: random.Random, pages: int, products: int) -> Catalog:
    """The shop's pages (home first) and products, in popularity order."""
    urls = [f"{SHOP}/", *(f"{SHOP}/{section}" for section in _SECTIONS)]
    urls += [f"{SHOP}/c/{category}" for category in CATEGORIES]
    page_number = 2
    while len(urls) < pages:
        urls += [f"{SHOP}/c/{category}?page={page_number}" for category in CATEGORIES]
        page_number += 1
    page_urls = urls[:pages]
    catalog_products = []
    unit_per_cent = 10 ** (PRICE_SCALE - 2)
    for index in range(products):
        dollars = math.exp(rng.gauss(_PRICE_LOG_MEAN, _PRICE_LOG_SIGMA))
        cents = int(dollars) * 100 + _PRICE_ENDINGS[rng.getrandbits(16) % len(_PRICE_ENDINGS)]
        cents = max(_MIN_PRICE_CENTS, min(_MAX_PRICE_CENTS, cents))
        category = CATEGORIES[rng.getrandbits(16) % len(CATEGORIES)]
        product_id = f"sku-{index + 1:06d}"
        catalog_products.append(
            Product(
                product_id=product_id,
                category=category,
                url=f"{SHOP}/p/{product_id}",
                price=float(Decimal(cents).scaleb(-2)),
                price_units=cents * unit_per_cent,
            )
        )
    return Catalog(
        pages=tuple(page_urls),
        products=tuple(catalog_products),
        search_urls=tuple(f"{SHOP}/search?q={term.replace(' ', '+')}" for term in SEARCH_TERMS),
        checkout_url=f"{SHOP}/checkout",
        confirmation_url=f"{SHOP}/checkout/confirmation",
    )


class WeightedChoice(Generic[T]):
    """One value of ``options`` by weight: a bisect over precomputed cumulative weights."""

    def __init__(self, options: tuple[tuple[T, float], ...]) -> None:
        self._values = [value for value, _ in options]
        self._cumulative = list(accumulate(weight for _, weight in options))
        self._total = self._cumulative[-1]

    def draw(self, rng_random: float) -> T:
        """The value for a uniform draw in [0, 1) (the caller passes ``rng.random()``)."""
        return self._values[min(bisect_right(self._cumulative, rng_random * self._total), len(self._values) - 1)]


def random_ip(rng: random.Random) -> str:
    """A plausible public client address: IPv4 mostly, IPv6 for a share of visitors."""
    if rng.random() < IPV6_SHARE:
        prefix = _IPV6_PREFIXES[rng.getrandbits(8) % len(_IPV6_PREFIXES)]
        groups = rng.getrandbits(112)  # seven 16-bit groups in one draw
        return ":".join([prefix, *(format((groups >> shift) & 0xFFFF, "x") for shift in range(0, 112, 16))])
    first = _IPV4_FIRST_OCTETS[rng.getrandbits(8) % len(_IPV4_FIRST_OCTETS)]
    octets = rng.getrandbits(24)  # three octets in one draw; the host part avoids .0 and .255
    return f"{first}.{octets >> 16}.{(octets >> 8) & 0xFF}.{1 + (octets & 0xFF) % 254}"
