"""uvicorn's HTTP/1.1 protocol with the limits a server that strangers can reach needs, and uvicorn lacks.

uvicorn (httptools) gives a connection no deadline until its first response, puts no bound on a request line or
its headers (``self.url += url``), and counts every open connection against ``limit_concurrency``. So a few
thousand connections that send nothing, or a header a byte at a time, would hold every slot of the collector
until it answers everyone else with a bare 503 (slowloris). :func:`guarded_protocol` adds, per connection:

- a **header deadline**: from the connection's first byte (or from a kept-alive connection's next request)
  to the end of the request's headers; past it the connection gets ``408`` and is closed;
- a **header size**: a request line and headers longer than ``max_header_bytes`` get ``431`` and are closed,
  checked after each read (uvicorn holds at most that read more);
- **connections per client**: beyond ``per_client`` open connections from one address (an IPv6 address's
  /64: rtap.addresses.client_key), a new one is closed at once; loopback peers and the trusted proxies are not
  counted (behind a proxy every client shares its address, and the proxy has limits of its own).

A request's body has its own deadline where it is read (rtap.collect.payload), as only the route knows how
much body it takes.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from typing import ClassVar, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from rtap.addresses import ClientAddress, client_key, parse_address

_CLOSE = b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n"


def _answer(transport: asyncio.Transport, status: bytes, text: bytes) -> None:
    head = b"HTTP/1.1 " + status + b"\r\n" + _CLOSE + b"content-length: " + str(len(text)).encode() + b"\r\n\r\n"
    transport.write(head + text)
    transport.close()


class GuardedProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` with the limits of the module docstring; made by :func:`guarded_protocol`."""

    header_timeout_s: ClassVar[float]
    max_header_bytes: ClassVar[int]
    per_client: ClassVar[int]
    proxies: ClassVar[ClientAddress]
    # Open connections per counted client (client_key): an entry only while one is open, so at most as many
    # entries as connections (the server's limit_concurrency bounds those).
    open_by_client: ClassVar[Counter[str]]

    _deadline: asyncio.TimerHandle | None = None
    _awaiting_headers = True
    _header_bytes = 0
    _counted: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        peer = self.client[0] if self.client else None
        ip = parse_address(peer)
        if ip is not None and not ip.is_loopback and not self.proxies.trusts(peer):
            key = client_key(ip)
            if self.open_by_client[key] >= self.per_client:
                transport.close()
                return
            self.open_by_client[key] += 1
            self._counted = key
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._counted is not None:
            self.open_by_client[self._counted] -= 1
            if self.open_by_client[self._counted] <= 0:
                del self.open_by_client[self._counted]
            self._counted = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._awaiting_headers:
            return
        # The whole read counts towards the headers still pending after it: exact for a request's first read
        # (on_message_begin started the count during it); more only when the read also ends an earlier pipelined
        # request, which browsers never send.
        self._header_bytes += len(data)
        if self._header_bytes > self.max_header_bytes and not self.transport.is_closing():
            self._disarm()
            _answer(
                self.transport,
                b"431 Request Header Fields Too Large",
                b"the request line and headers exceed %d bytes\n" % self.max_header_bytes,
            )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._awaiting_headers = True
        self._header_bytes = 0
        self._arm()

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._disarm()
        super().on_headers_complete()

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.header_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self._awaiting_headers and not self.transport.is_closing():
            _answer(
                self.transport,
                b"408 Request Timeout",
                b"the request's headers took longer than %g s\n" % self.header_timeout_s,
            )


def guarded_protocol(
    *, header_timeout_s: float, max_header_bytes: int, per_client: int, trusted_proxies: Sequence[str] = ()
) -> type[GuardedProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` with these limits; connections from
    ``trusted_proxies`` (addresses or networks) are not counted per client."""
    limits = {
        "header_timeout_s": header_timeout_s,
        "max_header_bytes": max_header_bytes,
        "per_client": per_client,
        "proxies": ClientAddress(trusted_proxies),
        "open_by_client": Counter(),
    }
    return cast("type[GuardedProtocol]", type("GuardedProtocol", (GuardedProtocol,), limits))
