"""Write keys and their origins: a key is usable from its site's origins (or without an Origin), never another's."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rtap.collect.api import Reason, Refused
from rtap.collect.keys import WriteKeys, cors_headers, demo_keys, referer_origin
from rtap.collect.server import check_exposure
from rtap.errors import ConfigError
from rtap.settings import DEMO_WRITE_KEY, CollectorSettings, MetricsSettings, SiteKey

KEYS = WriteKeys({"k1": SiteKey(site="shop", origins=["https://Shop.example"]), "k2": SiteKey(site="blog")})


def reason(key: str | None, origin: str | None) -> Reason | None:
    try:
        KEYS.site(key, origin)
    except Refused as refused:
        return refused.reason
    return None


def test_a_key_is_usable_from_its_origins_or_without_an_origin() -> None:
    assert KEYS.site("k1", "https://shop.example").name == "shop"
    assert KEYS.site("k1", None).name == "shop"
    assert reason("k1", "https://evil.example") == Reason.ORIGIN_NOT_ALLOWED
    assert reason("k2", "https://shop.example") == Reason.ORIGIN_NOT_ALLOWED
    assert reason("nope", None) == Reason.UNKNOWN_WRITE_KEY
    assert reason(None, None) == Reason.MISSING_WRITE_KEY


def test_preflights_use_the_query_key_or_any_keys_origins() -> None:
    assert KEYS.preflight_allows("k1", "https://shop.example")
    assert KEYS.preflight_allows(None, "https://shop.example")
    assert not KEYS.preflight_allows("k2", "https://shop.example")
    assert not KEYS.preflight_allows(None, "https://evil.example")
    assert cors_headers("https://shop.example") == {
        "Access-Control-Allow-Origin": "https://shop.example",
        "Access-Control-Expose-Headers": "Retry-After",  # the tracker waits at least that long
        "Vary": "Origin",
    }
    assert "Access-Control-Allow-Origin" not in cors_headers(None)


def test_the_demo_key_is_for_the_collectors_own_origin_and_loopback_only() -> None:
    demo = WriteKeys(demo_keys(8070))
    assert demo.site(DEMO_WRITE_KEY, "http://127.0.0.1:8070").name == "demo"
    assert demo.site(DEMO_WRITE_KEY, "http://localhost:8070").name == "demo"
    metrics = MetricsSettings(_env_file=None)  # type: ignore[call-arg]
    check_exposure(CollectorSettings(_env_file=None), metrics)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="only the built-in demo write key"):
        check_exposure(CollectorSettings(_env_file=None, host="0.0.0.0"), metrics)  # type: ignore[call-arg]
    own = CollectorSettings(_env_file=None, host="0.0.0.0", write_keys={"k": SiteKey(site="s")})  # type: ignore[call-arg]
    check_exposure(own, metrics)


@pytest.mark.parametrize("origin", ["shop.example", "https://shop.example/", "ftp://shop.example", "https://"])
def test_an_origin_that_is_no_origin_is_refused_by_the_settings(origin: str) -> None:
    with pytest.raises(ValidationError, match="is not an origin"):
        SiteKey(site="s", origins=[origin])


@pytest.mark.parametrize(
    ("referer", "origin"),
    [
        ("https://shop.example/cart.html?x=1#top", "https://shop.example"),
        ("HTTPS://Shop.Example:8443/", "https://shop.example:8443"),
        ("http://127.0.0.1:8070/shop/", "http://127.0.0.1:8070"),
        (None, None),
        ("", None),
        ("android-app://com.example/", None),  # no http(s) origin: the key alone decides, as without a Referer
        ("https://someone@shop.example/", None),
        ("not a url", None),
    ],
)
def test_the_pixels_origin_is_its_referers(referer: str | None, origin: str | None) -> None:
    assert referer_origin(referer) == origin
