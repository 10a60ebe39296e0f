"""Write keys: which site a request is for, and which browser origins may send with its key (CORS).

A write key is public (it sits in the site's pages); what makes it useful to the site alone is its list of
origins: a browser states the page's origin in the ``Origin`` header and cannot lie about it, so another
site's pages cannot send with the key. The pixel, an image, carries no ``Origin``: its ``Referer``'s origin is
checked instead (browsers send it by default). A request with neither (a server, curl, a page that hides its
referrer) is accepted on the key alone: a non-browser client could write any header anyway.

Preflights (``OPTIONS``) carry no body and no header values, so they are answered from the key in the query
(``?key=``) when there is one, else from every configured key's origins; the request that follows is checked
against its own key.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from rtap.collect.api import Reason, Refused
from rtap.settings import DEMO_WRITE_KEY, CollectorSettings, SiteKey

# What a browser may send and read across origins: the write key header and gzip bodies.
_ALLOW_HEADERS = "Content-Type, Content-Encoding, X-Rtap-Write-Key"
_PREFLIGHT_MAX_AGE_S = "600"


def demo_keys(port: int) -> dict[str, SiteKey]:
    """The demo shop's key: the collector serves the shop itself, so its origins are the collector's own."""
    origins = [f"http://{host}:{port}" for host in ("127.0.0.1", "localhost")]
    return {DEMO_WRITE_KEY: SiteKey(site="demo", origins=origins)}


@dataclass(frozen=True)
class Site:
    name: str
    origins: frozenset[str]


class WriteKeys:
    """The configured keys (or the demo key) with their sites and origins."""

    def __init__(self, keys: dict[str, SiteKey]) -> None:
        self._sites = {key: Site(entry.site, frozenset(entry.origins)) for key, entry in keys.items()}
        self._any_origin = frozenset(origin for site in self._sites.values() for origin in site.origins)

    @classmethod
    def from_settings(cls, settings: CollectorSettings, port: int) -> WriteKeys:
        """The configured keys; the demo key on the collector's bound ``port`` when none are."""
        return cls(settings.write_keys or demo_keys(port))

    def site(self, key: str | None, origin: str | None) -> Site:
        """The site of ``key`` if ``origin`` (the request's ``Origin`` header, or None) may use it, else a
        :class:`Refused` (401 for the key, 403 for the origin)."""
        if key is None:
            raise Refused(Reason.MISSING_WRITE_KEY, "no write key: give write_key, X-Rtap-Write-Key or ?key=")
        site = self._sites.get(key)
        if site is None:
            raise Refused(Reason.UNKNOWN_WRITE_KEY, "unknown write key")
        if origin is not None and origin.lower() not in site.origins:
            raise Refused(Reason.ORIGIN_NOT_ALLOWED, f"origin {origin} is not allowed for this write key")
        return site

    def preflight_allows(self, key: str | None, origin: str) -> bool:
        """Whether a preflight from ``origin`` is answered (see the module docstring)."""
        if key is None:
            return origin.lower() in self._any_origin
        site = self._sites.get(key)
        return site is not None and origin.lower() in site.origins


def referer_origin(referer: str | None) -> str | None:
    """The origin (``scheme://host[:port]``) of a ``Referer`` URL; None without one, or for one that names no
    http(s) origin."""
    if not referer:
        return None
    try:
        parts = urllib.parse.urlsplit(referer.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def cors_headers(origin: str | None) -> dict[str, str]:
    """The CORS headers of an answer to a request from ``origin``: that origin only, never ``*``.

    Refusals carry them too, so that the tracker can read a 4xx and stop retrying instead of seeing an opaque
    network error; an answer holds nothing but the outcome of the request the page itself sent.
    """
    if origin is None:
        return {"Vary": "Origin"}
    return {"Access-Control-Allow-Origin": origin, "Access-Control-Expose-Headers": "Retry-After", "Vary": "Origin"}


def preflight_headers(origin: str) -> dict[str, str]:
    return {
        **cors_headers(origin),
        "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
        "Access-Control-Allow-Headers": _ALLOW_HEADERS,
        "Access-Control-Max-Age": _PREFLIGHT_MAX_AGE_S,
    }
