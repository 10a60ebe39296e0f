"""rtap.addresses: the client is the peer, or what trusted proxies say; a header from anyone else is not believed."""

from __future__ import annotations

import pytest

from rtap.addresses import ClientAddress, client_key, names_loopback, parse_address


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("198.51.100.1", "6.6.6.6", "198.51.100.1"),  # not a trusted proxy: its header is not believed
        ("10.0.0.5", "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # the nearest address our proxy did not add
        ("10.0.0.5", "203.0.113.9, 10.0.0.7", "203.0.113.9"),  # through two of our proxies
        ("10.0.0.5", "10.0.0.7", "10.0.0.7"),  # only proxies: the farthest one
        ("10.0.0.5", "garbage, 203.0.113.9", "203.0.113.9"),
        ("10.0.0.5", "203.0.113.9, garbage", "10.0.0.5"),  # a hop nobody vouches for: stop before it
        ("10.0.0.5", "[2001:db8::1]:443", "2001:db8::1"),
        ("10.0.0.5", "203.0.113.9:51234", "203.0.113.9"),
        ("10.0.0.5", None, "10.0.0.5"),
        ("testclient", None, None),
        # A proxy that adds a line of its own (HAProxy) after the client's: the lines are one list, in order.
        ("10.0.0.5", ["6.6.6.6", "203.0.113.9"], "203.0.113.9"),
        ("10.0.0.5", ["6.6.6.6, 7.7.7.7", "203.0.113.9, 10.0.0.7"], "203.0.113.9"),
        ("198.51.100.1", ["6.6.6.6", "7.7.7.7"], "198.51.100.1"),
    ],
)
def test_the_client_is_the_peer_or_what_trusted_proxies_say(
    peer: str, forwarded: str | list[str] | None, client: str | None
) -> None:
    lines = [forwarded] if isinstance(forwarded, str) else forwarded or []
    resolved = ClientAddress(["10.0.0.0/8"]).resolve(peer, lines)
    assert (None if resolved is None else str(resolved)) == client


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("203.0.113.9:443", "203.0.113.9"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("::ffff:198.51.100.9", "198.51.100.9"),  # IPv4-mapped: the IPv4 address it is
        (" 203.0.113.9 ", "203.0.113.9"),
        ("[2001:db8::1", None),
        ("unix-socket", None),
        ("", None),
        (None, None),
    ],
)
def test_addresses_as_peers_and_proxies_spell_them(text: str | None, address: str | None) -> None:
    parsed = parse_address(text)
    assert (None if parsed is None else str(parsed)) == address


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1:8050", True),
        ("127.0.0.1", True),
        ("localhost:8050", True),
        ("LOCALHOST", True),
        ("[::1]:8050", True),
        ("127.1.2.3:80", True),
        ("evil.example:8050", False),
        ("evil.example", False),
        ("localhost.evil.example:8050", False),
        ("10.0.0.1:8050", False),
        ("[2001:db8::1]:8050", False),
        ("", False),
        (None, False),
    ],
)
def test_a_host_header_names_loopback_or_not(host: str | None, loopback: bool) -> None:
    assert names_loopback(host) is loopback


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.5", "203.0.113.5"),
        ("2001:db8:1:2::7", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),  # the same host's /64: one client
        ("2001:db8:1:3::7", "2001:db8:1:3::/64"),
        ("::ffff:203.0.113.5", "203.0.113.5"),  # IPv4-mapped: the IPv4 client it is
    ],
)
def test_a_limit_counts_an_ipv4_client_by_its_address_and_an_ipv6_one_by_its_64(address: str, key: str) -> None:
    parsed = parse_address(address)
    assert parsed is not None
    assert client_key(parsed) == key
