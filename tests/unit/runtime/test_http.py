"""The guarded HTTP protocol: a real uvicorn server on loopback, spoken to by raw sockets as a slow or greedy client
would, and the per-client count on connections as uvicorn makes them."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send
from uvicorn.server import ServerState

from rtap.runtime.http import GuardedProtocol, guarded_protocol

HEADER_TIMEOUT_S = 0.4
MAX_HEADER_BYTES = 4096


async def _hello(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("hello")(scope, receive, send)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    sock = socket.create_server(("127.0.0.1", 0))
    protocol = guarded_protocol(header_timeout_s=HEADER_TIMEOUT_S, max_header_bytes=MAX_HEADER_BYTES, per_client=2)
    config = uvicorn.Config(_hello, log_level="warning", lifespan="off", http=protocol, timeout_keep_alive=30)
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield sock.getsockname()[:2]
    running.should_exit = True
    thread.join(10)


def _until_closed(conn: socket.socket, timeout_s: float = 5.0) -> bytes:
    """Everything the server sends until it closes the connection (or ``timeout_s``: then the test fails)."""
    conn.settimeout(timeout_s)
    received = b""
    while chunk := conn.recv(65536):
        received += chunk
    return received


def test_a_connection_that_sends_nothing_is_answered_408_and_closed(server: tuple[str, int]) -> None:
    started = time.monotonic()
    with socket.create_connection(server) as conn:
        answer = _until_closed(conn)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert HEADER_TIMEOUT_S <= time.monotonic() - started < HEADER_TIMEOUT_S + 3


def test_headers_sent_a_byte_at_a_time_past_the_deadline_are_cut_off(server: tuple[str, int]) -> None:
    with socket.create_connection(server) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        answer = b""
        conn.settimeout(0.05)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # a byte every 50 ms: the connection never goes quiet
            try:
                conn.sendall(b"a")
                answer += conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if answer:
                break
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_headers_beyond_the_limit_are_answered_431(server: tuple[str, int]) -> None:
    with socket.create_connection(server) as conn:  # a request line over the limit in one read
        conn.sendall(b"GET /" + b"a" * MAX_HEADER_BYTES)
        assert _until_closed(conn).startswith(b"HTTP/1.1 431 ")
    with socket.create_connection(server) as conn:  # a header that goes on past it, read after read
        conn.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        for _ in range(2):
            time.sleep(0.1)  # reads of their own
            conn.sendall(b"X-Big: " + b"b" * (MAX_HEADER_BYTES // 2))
        assert _until_closed(conn).startswith(b"HTTP/1.1 431 ")
    with socket.create_connection(server) as conn:  # headers just within it are served
        conn.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"b" * (MAX_HEADER_BYTES - 100) + b"\r\n\r\n")
        conn.settimeout(5)
        assert conn.recv(65536).startswith(b"HTTP/1.1 200 ")


def test_a_kept_alive_connection_serves_requests_that_come_slower_than_the_header_deadline(
    server: tuple[str, int],
) -> None:
    with socket.create_connection(server) as conn:
        conn.settimeout(5)
        for _ in range(3):
            conn.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            answer = conn.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200 ")
            assert answer.endswith(b"hello")
            time.sleep(HEADER_TIMEOUT_S * 1.5)  # idle between requests is keep-alive's, not a header deadline


class _Transport(asyncio.Transport):
    """What uvicorn reads of a connection when it is made: its peer and local addresses."""

    def __init__(self, peer: str) -> None:
        super().__init__()
        self._peer = peer
        self.closed = False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": (self._peer, 40000), "sockname": ("10.0.0.1", 8070)}.get(name, default)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def test_one_client_holds_at_most_its_share_of_connections_and_an_ipv6_client_counts_by_its_64() -> None:
    async def run() -> None:
        kind = guarded_protocol(
            header_timeout_s=60, max_header_bytes=MAX_HEADER_BYTES, per_client=2, trusted_proxies=["10.9.0.0/16"]
        )
        made: list[tuple[GuardedProtocol, _Transport]] = []
        config = uvicorn.Config(_hello, http=kind)
        config.load()
        state = ServerState()

        def connect(peer: str) -> tuple[GuardedProtocol, _Transport]:
            protocol = kind(config=config, server_state=state, app_state={})
            transport = _Transport(peer)
            protocol.connection_made(transport)
            made.append((protocol, transport))
            return protocol, transport

        assert [connect("203.0.113.5")[1].closed for _ in range(3)] == [False, False, True]
        assert not connect("203.0.113.6")[1].closed  # another client has its own share
        assert [connect(f"2001:db8:1:2::{n}")[1].closed for n in range(1, 4)] == [False, False, True]
        assert not connect("2001:db8:1:3::1")[1].closed  # the next /64 is another client
        # Not counted: loopback peers and the trusted proxies, behind which every client shares one address.
        assert not any(connect(peer)[1].closed for peer in ["127.0.0.1"] * 3 + ["10.9.0.7"] * 3)
        first, _ = made[0]
        first.connection_lost(None)
        assert not connect("203.0.113.5")[1].closed  # a closed connection gives its slot back
        for protocol, _transport in made:
            protocol.connection_lost(None)
        assert dict(kind.open_by_client) == {}  # no entry outlives its connections

    asyncio.run(run())
