"""Read-only queries into a chDB directory that another rtap process owns, over a local Unix socket.

chDB lets one process open a directory, but ``rtap sql``, ``rtap status`` or a second dashboard
must be able to read while ``rtap up`` runs. The owner serves read-only queries on
``<data dir>/run/chdb.sock`` (mode 0600: only the same user) and runs them on its engine's
``readonly=2`` connection, so the engine refuses writes whatever a peer sends.

Protocol (version 1); every frame is a 4-byte big-endian length and that many bytes:

    request   frame: JSON {"version": 1, "sql": str, "format": "arrow" | <ClickHouse format>,
                           "parameters": {name: escaped text}, "settings": {...}}
    response  frame: b"A" + Arrow IPC stream | b"T" + formatted bytes
                   | b"E" + JSON {"kind": "rejected" | "retryable" | "error", "code": int | null, "message": str}

A connection carries any number of request/response pairs, one at a time.

The owner treats a peer as hostile (the socket is the user's own, but its peers are whatever runs as that
user): every query runs on the read-only connection under the reader's limits, which a request may lower but
not lift (``settings``: only those limits; a ``SETTINGS`` clause is refused, as is any function that reaches
files, URLs, processes or other servers: rtap.warehouse.client); a frame is read only after its length is
checked against :data:`MAX_REQUEST_BYTES` (a peer cannot make the owner allocate 4 GiB); at most
:data:`MAX_CONNECTIONS` peers are served at once (one thread each), a further one gets a retryable refusal. A read
through the socket binds no ``$inputs``: chDB resolves them through one name cache for the whole engine, so such a
read holds the engine's write lock (rtap.warehouse.chdb.client), and a peer could hold the stream job's writes for
as long as its read may run. A request that names inputs is refused, its frames read (within the size cap) and
dropped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import struct
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rtap.errors import (
    ConfigError,
    QueryRejectedError,
    RetryableWarehouseError,
    RtapError,
    WarehouseError,
)
from rtap.warehouse.chdb.client import ChdbClient
from rtap.warehouse.client import WarehouseClient, read_limits
from rtap.warehouse.parameters import ParameterText, format_parameters

if TYPE_CHECKING:
    import pyarrow as pa

    from rtap.settings import Settings

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
NO_INPUTS = (
    "refused by the chDB channel: a read through the socket binds no $inputs (binding them holds the engine's "
    "write lock, which the stream job needs); run such a read in the process that owns the warehouse"
)
ARROW = "arrow"
# A request (its header, and the frames a refused request names as inputs) may be this large.
MAX_REQUEST_BYTES = 16 * 1024 * 1024
# An answer may be this large: above the reader's result limit (read_max_memory_bytes), with text formats' room.
MAX_RESPONSE_BYTES = 1024 * 1024 * 1024
# Peers served at once, each by a thread of its own.
MAX_CONNECTIONS = 32
_LENGTH = struct.Struct(">I")
# sun_path is 108 bytes on Linux including the terminating NUL.
_MAX_SOCKET_PATH = 107
_ACCEPT_POLL_S = 0.2


def socket_path(settings: Settings) -> Path:
    """Where the owner of ``settings.paths.chdb`` serves read-only queries."""
    return settings.paths.run / "chdb.sock"


def _check_path_length(path: Path) -> None:
    if len(os.fsencode(path)) > _MAX_SOCKET_PATH:
        raise ConfigError(
            f"the socket path {path} is longer than {_MAX_SOCKET_PATH} bytes; choose a shorter RTAP_DATA_DIR"
        )


# -- framing -------------------------------------------------------------------------------------


def _send_frame(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(_LENGTH.pack(len(payload)))
    sock.sendall(payload)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    buffer = bytearray(size)
    view = memoryview(buffer)
    received = 0
    while received < size:
        count = sock.recv_into(view[received:])
        if count == 0:
            raise ConnectionResetError("the peer closed the connection in the middle of a frame")
        received += count
    return bytes(buffer)


class FrameTooLarge(ValueError):
    """A frame announced more bytes than the reader accepts; nothing of it was read."""


def _recv_frame(sock: socket.socket, limit: int) -> bytes | None:
    """The next frame, or None if the peer closed the connection cleanly between frames. The length is checked
    against ``limit`` before a byte of the body is read or any room is made for it."""
    first = sock.recv(_LENGTH.size)
    if not first:
        return None
    header = first + _recv_exact(sock, _LENGTH.size - len(first)) if len(first) < _LENGTH.size else first
    (size,) = _LENGTH.unpack(header)
    if size > limit:
        raise FrameTooLarge(f"a frame of {size:,} bytes is over the limit of {limit:,} bytes")
    return _recv_exact(sock, size)


# pyarrow is imported only where Arrow crosses the socket: a text query (`rtap sql`) never loads it, which
# saves ~0.15 s of CPU per call (python -X importtime; docs in rtap.warehouse.cli).


def _arrow_bytes(table: pa.Table) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _arrow_table(data: bytes) -> pa.Table:
    import pyarrow as pa

    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def _error_payload(error: RtapError, *, closing: bool = False) -> bytes:
    """An error answer; ``closing``: the owner ends the connection after it (the peer must open a new one)."""
    kind = "rejected" if isinstance(error, QueryRejectedError) else "retryable" if error.retryable else "error"
    code = error.code if isinstance(error, WarehouseError) else None
    return b"E" + json.dumps({"kind": kind, "code": code, "message": str(error), "closing": closing}).encode()


def _error_from_payload(body: bytes) -> WarehouseError:
    detail = json.loads(body)
    kinds: dict[str, type[WarehouseError]] = {
        "rejected": QueryRejectedError,
        "retryable": RetryableWarehouseError,
        "error": WarehouseError,
    }
    return kinds.get(detail.get("kind"), WarehouseError)(str(detail.get("message")), code=detail.get("code"))


# -- the owner's side ----------------------------------------------------------------------------


class ChannelServer:
    """Serves read-only queries on a chDB client's engine until :meth:`close`. Made by :func:`serve_channel`."""

    def __init__(self, client: WarehouseClient, path: Path) -> None:
        self.path = path
        self._client = client
        self._stop = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._listener = self._bind(path)
        self._thread = threading.Thread(target=self._accept_loop, name="rtap-chdb-channel", daemon=True)
        self._thread.start()

    @staticmethod
    def _bind(path: Path) -> socket.socket:
        _check_path_length(path)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Bind under a temporary name, restrict it, then rename over the final path: no peer can ever
        # reach a socket with looser permissions, and a stale socket from a dead owner is replaced.
        staging = path.with_name(f".{path.name}.{os.getpid()}")
        staging.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(staging))
            os.chmod(staging, 0o600)
            os.replace(staging, path)
            listener.listen(MAX_CONNECTIONS)
            listener.settimeout(_ACCEPT_POLL_S)
        except BaseException:
            listener.close()
            staging.unlink(missing_ok=True)
            raise
        return listener

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                raise
            with self._connections_lock:
                full = len(self._connections) >= MAX_CONNECTIONS
                if not full:
                    self._connections.add(conn)
            if full:
                self._turn_away(conn)
                continue
            conn.settimeout(None)
            threading.Thread(target=self._serve, args=(conn,), name="rtap-chdb-channel-conn", daemon=True).start()

    @staticmethod
    def _turn_away(conn: socket.socket) -> None:
        """Refuse a peer beyond :data:`MAX_CONNECTIONS` with a retryable error, without a thread for it."""
        refusal = RetryableWarehouseError(
            f"the owner of the chDB directory serves at most {MAX_CONNECTIONS} connections at once; retry shortly"
        )
        try:
            conn.settimeout(1.0)
            _send_frame(conn, _error_payload(refusal, closing=True))
        except OSError:
            log.debug("chDB channel: a peer turned away left first")
        finally:
            conn.close()

    def _serve(self, conn: socket.socket) -> None:
        try:
            while not self._stop.is_set():
                header = _recv_frame(conn, MAX_REQUEST_BYTES)
                if header is None:
                    return
                budget = MAX_REQUEST_BYTES - len(header)
                request = json.loads(header)
                if not isinstance(request, dict):
                    raise ValueError("a request is a JSON object")
                named = request.get("inputs") or []
                if not isinstance(named, list):
                    raise ValueError("a request's inputs are a list")
                for _ in named:  # kept in step with the peer, never decoded: the request is refused
                    frame = _recv_frame(conn, budget)
                    if frame is None:
                        return
                    budget -= len(frame)
                _send_frame(conn, _error_payload(QueryRejectedError(NO_INPUTS)) if named else self._answer(request))
        except FrameTooLarge as exc:
            # The rest of the stream is out of step: say why, then end the connection.
            log.warning("chDB channel: refused a request: %s", exc)
            refusal = QueryRejectedError(f"refused by the chDB channel: {exc}")
            with contextlib.suppress(OSError):
                _send_frame(conn, _error_payload(refusal, closing=True))
        except (OSError, ValueError) as exc:
            # A peer that disconnects or sends garbage loses only its own connection.
            if not self._stop.is_set():
                log.warning("chDB channel: dropped a connection: %s", exc)
        finally:
            with self._connections_lock:
                self._connections.discard(conn)
            conn.close()

    def _answer(self, request: dict[str, Any]) -> bytes:
        if request.get("version") != PROTOCOL_VERSION:
            return _error_payload(WarehouseError(f"unsupported channel protocol version {request.get('version')}"))
        sql, fmt = request.get("sql"), request.get("format")
        if not isinstance(sql, str) or not isinstance(fmt, str):
            return _error_payload(WarehouseError("malformed channel request: sql and format must be strings"))
        try:
            if fmt == ARROW:
                parameters = {k: ParameterText(v) for k, v in dict(request.get("parameters") or {}).items()}
                table = self._client.query_arrow(sql, parameters=parameters, settings=request.get("settings") or {})
                return b"A" + _arrow_bytes(table)
            return b"T" + self._client.query_text(sql, default_format=fmt)
        except RtapError as error:
            return _error_payload(error)

    def close(self) -> None:
        """Stop accepting, end open connections, remove the socket. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        self._listener.close()
        self.path.unlink(missing_ok=True)
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                log.debug("chDB channel: connection already closed")
        self._client.close()

    def __enter__(self) -> ChannelServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_channel(client: WarehouseClient, settings: Settings) -> ChannelServer:
    """Serve read-only queries on ``client``'s chDB engine for other processes (``rtap up`` calls this).

    ``client`` must be this process's own chDB client (the owner of the data directory). The returned
    handle's ``close()`` stops the server; ``client`` itself stays open.
    """
    if not isinstance(client, ChdbClient):
        raise ConfigError("only the process that owns a chDB data directory can serve the read-only channel")
    return ChannelServer(client.readonly_view(), socket_path(settings))


# -- the reader's side ---------------------------------------------------------------------------


class ChannelClient(WarehouseClient):
    """A read-only client that sends each query to the process owning the chDB directory."""

    def __init__(self, path: Path, sock: socket.socket, settings: Settings, owner_pid: int | None) -> None:
        super().__init__(settings.warehouse.database, readonly=True, limits=read_limits(settings.warehouse))
        self.path = path
        self.owner_pid = owner_pid
        self._directory = settings.paths.chdb
        self._connect_timeout = settings.warehouse.connect_timeout_s
        self._timeout = settings.warehouse.query_timeout_s
        self._sock: socket.socket | None = sock
        self._lock = threading.Lock()

    @classmethod
    def connect(cls, path: Path, settings: Settings, *, owner_pid: int | None) -> ChannelClient | None:
        """A client on the socket at ``path``, or None when nothing answers there."""
        sock = cls._open(path, settings.warehouse.connect_timeout_s, settings.warehouse.query_timeout_s)
        return None if sock is None else cls(path, sock, settings, owner_pid)

    @staticmethod
    def _open(path: Path, connect_timeout: float, timeout: float) -> socket.socket | None:
        _check_path_length(path)
        deadline = time.monotonic() + connect_timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(connect_timeout)
            try:
                sock.connect(str(path))
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                return None
            except BlockingIOError:
                # The owner's backlog is full (a burst of peers): a Unix socket says so at once instead of waiting.
                sock.close()
                if time.monotonic() >= deadline:
                    raise RetryableWarehouseError(f"the owner's socket {path} accepts no connection: busy") from None
                time.sleep(_ACCEPT_POLL_S / 4)
                continue
            sock.settimeout(timeout)
            return sock

    def _owner(self) -> str:
        pid = f" (pid {self.owner_pid})" if self.owner_pid else ""
        return f"the rtap process{pid} that owns the chDB data directory {self._directory}"

    def _refusal(self, statement: str) -> str:
        return (
            f"{self._owner()} serves this process read-only queries, so this is refused: "
            f"{' '.join(statement.split())[:80]} (write from the owning process, or stop it first)"
        )

    def _exchange(self, header: dict[str, Any]) -> bytes:
        with self._lock:
            if self._sock is None:
                self._sock = self._open(self.path, self._connect_timeout, self._timeout)
                if self._sock is None:
                    raise RetryableWarehouseError(f"{self._owner()} no longer answers on {self.path}")
            sock = self._sock
            try:
                try:
                    _send_frame(sock, json.dumps({"version": PROTOCOL_VERSION, **header}).encode())
                except OSError:
                    # The owner may have answered before it closed (a refusal): that answer says why.
                    response = _recv_frame(sock, MAX_RESPONSE_BYTES)
                    if response is None or response[:1] != b"E":
                        raise
                else:
                    response = _recv_frame(sock, MAX_RESPONSE_BYTES)
            except TimeoutError as exc:
                self._drop()
                raise RetryableWarehouseError(
                    f"no answer from {self._owner()} within {self._timeout:g} s", query=header["sql"]
                ) from exc
            except (OSError, FrameTooLarge) as exc:
                self._drop()
                raise RetryableWarehouseError(f"lost the connection to {self._owner()}: {exc}") from exc
            if response is None:
                self._drop()
                raise RetryableWarehouseError(f"{self._owner()} closed the connection")
            kind, body = response[:1], response[1:]
            if kind == b"E" and json.loads(body).get("closing"):
                self._drop()
        if kind == b"E":
            raise _error_from_payload(body)
        return body

    def _drop(self) -> None:
        # After a timeout or a broken frame the stream is out of step: only a new connection is safe.
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _query_arrow(
        self,
        statement: str,
        inputs: dict[str, pa.Table],
        parameters: dict[str, Any],
        settings: dict[str, Any],
    ) -> pa.Table:
        if inputs:
            raise QueryRejectedError(NO_INPUTS)
        header = {"sql": statement, "format": ARROW, "parameters": format_parameters(parameters), "settings": settings}
        return _arrow_table(self._exchange(header))

    def _query_text(self, statement: str, default_format: str) -> bytes:
        return self._exchange({"sql": statement, "format": default_format})

    def _as_the_engine_reads(self, statement: str) -> str:
        """The statement as sent: the owner reads it as its engine does and judges it there (a peer's own check is
        a courtesy, and asking the owner first would cost `rtap sql` a round trip and pyarrow's import)."""
        return statement

    def _command(
        self, statement: str, inputs: dict[str, pa.Table], parameters: dict[str, Any], settings: dict[str, Any]
    ) -> None:
        raise QueryRejectedError(self._refusal(statement), query=statement)

    def _insert_arrow(self, table: str, data: pa.Table, dedup_token: str | None) -> None:
        raise QueryRejectedError(self._refusal(f"INSERT INTO {self.database}.{table}"))

    def _close(self) -> None:
        with self._lock:
            self._drop()
