"""Who sent a request: the connection's peer, or, when the peer is a configured trusted proxy, the nearest address
in ``X-Forwarded-For`` that is not one. A client can write anything into that header; only what a proxy of ours
appended is believed. The collector (its client rate limit and the address it stamps on events) and the
dashboard (its rate per client) both ask here, each with its own list of trusted proxies.

Every ``X-Forwarded-For`` line counts, in order, as one list (RFC 9110 5.3): some proxies (HAProxy's
``option forwardfor``) add a line of their own instead of appending to the client's, and a reader of the first
line only would then believe the client's line and never see the proxy's.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=4096)  # the same clients and proxies ask again and again; bounded
def parse_address(text: str | None) -> IPAddress | None:
    """An address as a peer or a proxy header spells it (``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``::1``);
    an IPv4-mapped IPv6 address as the IPv4 address it is. None when it is none."""
    if not text:
        return None
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class ClientAddress:
    """Who sent a request: the peer, or what trusted proxies say (see the module docstring)."""

    def __init__(self, trusted_proxies: Sequence[str]) -> None:
        self._trusted: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(p, strict=False) for p in trusted_proxies)

    def _is_trusted(self, address: IPAddress) -> bool:
        return any(address in network for network in self._trusted)

    def trusts(self, peer: str | None) -> bool:
        """Whether ``peer`` is one of the trusted proxies, whose forwarded headers are believed."""
        address = parse_address(peer)
        return address is not None and self._is_trusted(address)

    def resolve(self, peer: str | None, forwarded_for: Sequence[str]) -> IPAddress | None:
        """The client of a request from ``peer`` carrying these ``X-Forwarded-For`` lines (in their order)."""
        client = parse_address(peer)
        if client is None or not forwarded_for or not self._is_trusted(client):
            return client
        for entry in reversed(",".join(forwarded_for).split(",")):
            hop = parse_address(entry)
            if hop is None:  # a hop nobody can vouch for: stop at the last address a trusted proxy gave
                break
            client = hop
            if not self._is_trusted(hop):
                break
        return client


def names_loopback(host_header: str | None) -> bool:
    """Whether a request's ``Host`` header names this machine's loopback (``localhost`` or a loopback address,
    with any port). A server on loopback with no login answers only such requests: a web page whose DNS name
    an attacker re-points at 127.0.0.1 (DNS rebinding) sends its own name, and is refused."""
    if not host_header:
        return False
    name = host_header.strip().lower()
    if name.partition(":")[0] in ("localhost", "localhost."):
        return True
    address = parse_address(name)  # an address with or without its port, an IPv6 one in brackets
    return address is not None and address.is_loopback


def client_key(address: IPAddress) -> str:
    """What a limit per client counts under: an IPv4 address, or an IPv6 address's /64. One host is commonly
    given a whole /64 and may send from any address in it: counted per address, it would get a fresh allowance
    (and could evict everyone else's) with each one."""
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)
