"""chDB ownership across processes: a real owner process serves, this process reads through its socket."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import stat
import struct
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest

from rtap.errors import QueryRejectedError, RetryableWarehouseError, WarehouseError
from rtap.settings import Settings, WarehouseSettings
from rtap.warehouse import create_client
from rtap.warehouse.chdb.channel import MAX_CONNECTIONS, MAX_REQUEST_BYTES, ChannelClient, socket_path
from rtap.warehouse.chdb.client import ChdbClient

OWNER = textwrap.dedent(
    """
    import sys
    from rtap.settings import Settings
    from rtap.warehouse import create_client, serve_channel
    from rtap.warehouse.migrate import apply_migrations

    settings = Settings()
    with create_client(settings) as client:
        apply_migrations(client)
        client.command("CREATE TABLE IF NOT EXISTS {db}.numbers (n Int64) ENGINE = MergeTree ORDER BY n")
        client.command("INSERT INTO {db}.numbers SELECT number FROM numbers(10)")
        with serve_channel(client, settings):
            print("ready", flush=True)
            sys.stdin.read()  # serve until the test closes our stdin
    """
)
READY_TIMEOUT_S = 60.0


@dataclass
class Owner:
    process: subprocess.Popen[str]
    settings: Settings
    env: dict[str, str]

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _start_owner(data_dir: Path, database: str, stderr: Path | None = None, **settings: str) -> Owner:
    env = {**os.environ, "RTAP_DATA_DIR": str(data_dir), "RTAP_CLICKHOUSE_DATABASE": database, **settings}
    env.pop("RTAP_CLICKHOUSE_BACKEND", None)
    with contextlib.ExitStack() as files:
        errors = None if stderr is None else files.enter_context(stderr.open("w"))
        process = subprocess.Popen(
            [sys.executable, "-c", OWNER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            env=env,
            text=True,
        )
    owner = Owner(process, _settings(data_dir, database), env)
    assert process.stdout is not None
    poller = select.poll()  # not select(): this test process may hold more than 1024 descriptors (chDB's threads)
    poller.register(process.stdout, select.POLLIN)
    ready = poller.poll(READY_TIMEOUT_S * 1000)
    if not ready or process.stdout.readline().strip() != "ready":
        owner.stop()
        pytest.fail(f"the owner process did not start serving (exit code {process.poll()})")
    return owner


def _settings(data_dir: Path, database: str) -> Settings:
    return Settings(
        data_dir=data_dir, warehouse=WarehouseSettings(backend="chdb", database=database, connect_timeout_s=5)
    )


@pytest.fixture(scope="module")
def owner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Owner]:
    running = _start_owner(tmp_path_factory.mktemp("owned"), f"rtap_it_{uuid.uuid4().hex[:8]}")
    try:
        yield running
    finally:
        running.stop()


def _rtap(owner: Owner, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rtap", *args], env=owner.env, capture_output=True, text=True, timeout=60, check=False
    )


def test_a_second_process_reads_through_the_owner(owner: Owner) -> None:
    with create_client(owner.settings) as reader:
        assert isinstance(reader, ChannelClient)
        assert reader.owner_pid == owner.process.pid
        assert reader.query_rows("SELECT count(), sum(n) FROM {db}.numbers") == [(10, 45)]
        picked = reader.query_arrow(
            "SELECT n FROM {db}.numbers WHERE n < {limit:Int64} ORDER BY n", parameters={"limit": 3}
        )
        assert picked.column("n").to_pylist() == [0, 1, 2]
        assert reader.query_text("SELECT 7 AS x FORMAT JSONEachRow") == b'{"x":7}\n'
        assert "events" in {name for (name,) in reader.query_rows("SHOW TABLES FROM {db}")}


def test_writes_through_the_channel_are_refused(owner: Owner) -> None:
    with create_client(owner.settings) as reader:
        with pytest.raises(QueryRejectedError, match=f"pid {owner.process.pid}"):
            reader.command("INSERT INTO {db}.numbers SELECT 100")
        with pytest.raises(QueryRejectedError, match="refused"):
            reader.insert_arrow("numbers", pa.table({"n": [100]}))
        with pytest.raises(QueryRejectedError):
            reader.query_arrow("INSERT INTO {db}.numbers SELECT 100")
        assert reader.query_rows("SELECT max(n) FROM {db}.numbers") == [(9,)]


def test_errors_cross_the_channel_with_their_code(owner: Owner) -> None:
    with create_client(owner.settings) as reader, pytest.raises(WarehouseError, match="UNKNOWN_TABLE") as failed:
        reader.query_rows("SELECT * FROM {db}.missing_table")
    assert failed.value.code == 60


def test_socket_is_private_to_the_user(owner: Owner) -> None:
    mode = os.stat(socket_path(owner.settings)).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600


def test_rtap_sql_works_through_the_channel(owner: Owner) -> None:
    result = _rtap(owner, "sql", "SELECT n, n * 2 FROM {db}.numbers WHERE n < 3 ORDER BY n")
    assert (result.returncode, result.stdout) == (0, "0\t0\n1\t2\n2\t4\n")
    formatted = _rtap(owner, "sql", "SELECT sum(n) AS total FROM {db}.numbers FORMAT JSONEachRow")
    assert formatted.stdout == '{"total":45}\n'


# A value a producer could have written: a colour sequence (ESC [), a C1 control sequence introducer, a bell.
HOSTILE = "SELECT concat('a', char(27), '[31m', 'b', char(194, 155), '2J', char(7)) AS v"


def _on_a_terminal(owner: Owner, *args: str) -> bytes:
    """What ``rtap`` prints when its stdout is a terminal (a pseudo-terminal read to its end)."""
    import pty

    main, child = pty.openpty()
    with subprocess.Popen([sys.executable, "-m", "rtap", *args], env=owner.env, stdout=child, stderr=child) as run:
        os.close(child)
        output = b""
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the child closed its side
                break
            if not chunk:
                break
            output += chunk
        run.wait(timeout=60)
    os.close(main)
    return output


def test_rtap_sql_on_a_terminal_escapes_what_a_terminal_would_act_on(owner: Owner) -> None:
    shown = _on_a_terminal(owner, "sql", HOSTILE)
    for control in (b"\x1b", b"\x07", "\u009b".encode()):
        assert control not in shown, shown
    assert b"a\\x1b[31mb\\x9b2J\\x07" in shown
    piped = _rtap(owner, "sql", HOSTILE)  # into a pipe: ClickHouse's bytes as they are, for the next program
    assert piped.stdout == "a\x1b[31mb\x9b2J\x07\n"


LIGHT_SQL = textwrap.dedent(
    """
    import sys
    from rtap.cli import main

    sys.argv = ["rtap", "sql", "SELECT count() FROM {db}.numbers"]
    try:
        main()
    except SystemExit as done:
        loaded = sorted(name for name in ("pyarrow", "numpy", "chdb", "rich", "pyspark") if name in sys.modules)
        print(f"exit {done.code} loaded {loaded}")
    """
)


def test_rtap_sql_through_the_channel_loads_no_arrow_engine_or_rich(owner: Owner) -> None:
    # What made `rtap sql` cost ~0.45 s of CPU per call (python -X importtime): pyarrow and numpy for a query
    # that travels as text, rich for output it never prints. Measured after: ~0.2 s (docs/operations.md).
    result = subprocess.run(
        [sys.executable, "-c", LIGHT_SQL], env=owner.env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stdout.splitlines() == ["10", "exit 0 loaded []"], result.stderr


def test_rtap_sql_refuses_writes_with_one_line(owner: Owner) -> None:
    result = _rtap(owner, "sql", "DROP TABLE {db}.numbers")
    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "refused" in result.stderr


def test_owner_exit_releases_the_directory(tmp_path: Path) -> None:
    database = f"rtap_it_{uuid.uuid4().hex[:8]}"
    owner = _start_owner(tmp_path, database)
    owner.stop()
    assert owner.process.returncode == 0
    assert not socket_path(owner.settings).exists()
    with create_client(owner.settings) as successor:
        assert isinstance(successor, ChdbClient)
        assert successor.query_rows("SELECT sum(n) FROM {db}.numbers") == [(45,)]


def test_a_killed_owner_is_taken_over(tmp_path: Path) -> None:
    database = f"rtap_it_{uuid.uuid4().hex[:8]}"
    owner = _start_owner(tmp_path, database)
    owner.process.send_signal(signal.SIGKILL)
    owner.process.wait(timeout=30)
    assert socket_path(owner.settings).exists()  # left behind: the takeover must cope with it
    started = time.monotonic()
    with create_client(owner.settings) as successor:
        assert isinstance(successor, ChdbClient)
        successor.command("INSERT INTO {db}.numbers SELECT 10")
        assert successor.query_rows("SELECT count() FROM {db}.numbers") == [(11,)]
    assert time.monotonic() - started < 5


# -- the channel as a door: limits, refusals and caps, proven against the raw socket -------------------------

LIMIT_S = 1.0
SLOW = "SELECT count() FROM numbers(100000000000)"
GREEDY = "SELECT length(groupArray(number)) FROM numbers(100000000)"
# Table functions (and the file function) that reach files, URLs, processes or other servers.
OUTSIDE = [
    "SELECT * FROM file('/etc/hostname', 'LineAsString')",
    "SELECT file('/etc/hostname')",
    "SELECT * FROM url('http://127.0.0.1:9/x', 'CSV', 'x String')",
    "SELECT * FROM s3('http://127.0.0.1:9/b/k', 'CSV', 'x String')",
    "SELECT * FROM hdfs('hdfs://127.0.0.1:9/x', 'CSV', 'x String')",
    "SELECT * FROM remote('127.0.0.1:9', system.one)",
    "SELECT * FROM executable('ls', 'TSV', 'x String')",
    "SELECT * FROM mysql('127.0.0.1:9', 'd', 't', 'u', 'p')",
    "SELECT * FROM postgresql('127.0.0.1:9', 'd', 't', 'u', 'p')",
    "SELECT * FROM jdbc('jdbc:x://127.0.0.1:9', 't')",
    "SELECT * FROM filesystem('/')",
    "SELECT 1 INTO OUTFILE '/tmp/rtap-channel-must-not-write'",
    # Behind ClickHouse's `#` and `//` comments, which a lexer of rtap's own once read as code (the peer's text
    # reaches the owner as sent: the owner judges it as its engine reads it).
    "SELECT line # '\nFROM file('/etc/hostname', 'LineAsString') -- '",
    "SELECT 1 // '\nSETTINGS max_execution_time = 0 -- '",
]


@pytest.fixture(scope="module")
def limited_owner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Owner]:
    running = _start_owner(
        tmp_path_factory.mktemp("limited"),
        f"rtap_it_{uuid.uuid4().hex[:8]}",
        RTAP_CLICKHOUSE_READ_MAX_EXECUTION_TIME_S=str(LIMIT_S),
        RTAP_CLICKHOUSE_READ_MAX_MEMORY_BYTES=str(64 * 1024**2),
    )
    try:
        yield running
    finally:
        running.stop()


def _raw(owner: Owner) -> socket.socket:
    peer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    peer.connect(str(socket_path(owner.settings)))  # blocking: waits for room in the owner's backlog
    peer.settimeout(30)
    return peer


def _send(peer: socket.socket, payload: bytes) -> None:
    peer.sendall(struct.pack(">I", len(payload)) + payload)


def _receive(peer: socket.socket) -> bytes | None:
    header = b""
    while len(header) < 4:
        chunk = peer.recv(4 - len(header))
        if not chunk:
            return None
        header += chunk
    (size,) = struct.unpack(">I", header)
    body = b""
    while len(body) < size:
        chunk = peer.recv(size - len(body))
        assert chunk, "the owner closed the connection in the middle of a frame"
        body += chunk
    return body


def _ask(owner: Owner, request: dict[str, object]) -> bytes | None:
    """One raw request, as a peer that skips the client's own checks would send it."""
    with _raw(owner) as peer:
        _send(peer, json.dumps({"version": 1, "format": "TabSeparated", **request}).encode())
        return _receive(peer)


def _refusal(answer: bytes | None) -> dict[str, object]:
    assert answer is not None
    assert answer[:1] == b"E", answer
    detail: dict[str, object] = json.loads(answer[1:])
    return detail


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))


def test_channel_reads_run_under_the_owners_time_and_memory_limits(limited_owner: Owner) -> None:
    with create_client(limited_owner.settings) as reader:
        began = time.monotonic()
        with pytest.raises(RetryableWarehouseError) as slow:
            reader.query_rows(SLOW)
        assert slow.value.code == 159
        assert time.monotonic() - began < 10 * LIMIT_S
        with pytest.raises(RetryableWarehouseError) as greedy:
            reader.query_rows(GREEDY)
        assert greedy.value.code == 241
        assert reader.query_rows("SELECT sum(n) FROM {db}.numbers") == [(45,)]
    began = time.monotonic()
    result = _rtap(limited_owner, "sql", SLOW)  # `rtap sql` too
    assert result.returncode == 1
    assert "TIMEOUT_EXCEEDED" in result.stderr
    assert time.monotonic() - began < 30


@pytest.mark.parametrize(
    "request_",
    [
        {"sql": "SELECT 1", "format": "arrow", "settings": {"max_execution_time": 0}},
        {"sql": "SELECT 1", "format": "arrow", "settings": {"max_memory_usage": 0}},
        {"sql": "SELECT 1", "format": "arrow", "settings": {"max_threads": 64}},
        {"sql": "SELECT 1", "format": "arrow", "settings": {"readonly": 0}},
        {"sql": SLOW + " SETTINGS max_execution_time = 0"},
        *({"sql": statement} for statement in OUTSIDE),
    ],
)
def test_the_channel_refuses_settings_overrides_and_reads_that_reach_outside(
    limited_owner: Owner, request_: dict[str, object]
) -> None:
    began = time.monotonic()
    refusal = _refusal(_ask(limited_owner, request_))
    assert refusal["kind"] == "rejected", refusal
    assert time.monotonic() - began < 5  # refused before the engine: no connection attempt, no minute of counting
    assert not Path("/tmp/rtap-channel-must-not-write").exists()


def test_a_read_with_inputs_is_refused_it_would_hold_the_jobs_write_lock(limited_owner: Owner) -> None:
    sql = "SELECT count() FROM {db}.numbers WHERE n IN (SELECT k FROM $wanted)"
    with create_client(limited_owner.settings) as reader, pytest.raises(QueryRejectedError, match=r"no \$inputs"):
        reader.query_arrow(sql, inputs={"wanted": pa.table({"k": [2, 3]})})
    with _raw(limited_owner) as peer:  # a peer that skips the client's check: refused, and served on in step
        header = {"version": 1, "sql": sql, "format": "arrow", "inputs": ["wanted"]}
        _send(peer, json.dumps(header).encode())
        _send(peer, b"an Arrow stream, never decoded")
        assert "no $inputs" in str(_refusal(_receive(peer))["message"])
        _send(peer, json.dumps({"version": 1, "sql": "SELECT 2", "format": "TabSeparated"}).encode())
        assert _receive(peer) == b"T2\n"


def test_a_request_of_the_wrong_shape_costs_the_peer_its_connection_only(tmp_path: Path) -> None:
    stderr = tmp_path / "owner.err"
    owner = _start_owner(tmp_path / "data", f"rtap_it_{uuid.uuid4().hex[:8]}", stderr=stderr)
    try:
        for garbage in (b"[]", b'"SELECT 1"', b'{"version": 1, "sql": "SELECT 1", "inputs": 5}'):
            with _raw(owner) as peer:
                _send(peer, garbage)
                assert _receive(peer) is None
        with create_client(owner.settings) as reader:  # the owner serves on
            assert reader.query_rows("SELECT count() FROM {db}.numbers") == [(10,)]
    finally:
        owner.stop()
    said = stderr.read_text()
    assert "Traceback" not in said, said  # each one a warning line, not a thread dying with a traceback
    assert said.count("dropped a connection") == 3, said


def test_a_frame_above_the_cap_is_refused_before_anything_is_allocated(limited_owner: Owner) -> None:
    before = _rss_kib(limited_owner.process.pid)
    with _raw(limited_owner) as peer:
        peer.sendall(struct.pack(">I", 0xFFFFFFFF))  # "4 GiB follow"
        refusal = _refusal(_receive(peer))
        assert f"{MAX_REQUEST_BYTES:,}" in str(refusal["message"])
        assert _receive(peer) is None  # and the connection is closed: the stream is out of step
    assert _rss_kib(limited_owner.process.pid) - before < 64 * 1024
    with create_client(limited_owner.settings) as reader:  # the owner serves on
        assert reader.query_rows("SELECT count() FROM {db}.numbers") == [(10,)]


def test_connections_beyond_the_cap_are_refused_and_the_slots_come_back(limited_owner: Owner) -> None:
    held = [_raw(limited_owner) for _ in range(MAX_CONNECTIONS)]
    try:
        for peer in held:  # each one served: every slot is taken
            _send(peer, json.dumps({"version": 1, "sql": "SELECT 1", "format": "TabSeparated"}).encode())
            assert _receive(peer) == b"T1\n"
        with _raw(limited_owner) as extra:
            refusal = _refusal(_receive(extra))
            assert refusal["kind"] == "retryable"
            assert f"{MAX_CONNECTIONS}" in str(refusal["message"])
        with pytest.raises(RetryableWarehouseError, match="connections"), create_client(limited_owner.settings) as c:
            c.query_rows("SELECT 1")
    finally:
        for peer in held:
            peer.close()
    deadline = time.monotonic() + 10
    while True:
        try:
            with create_client(limited_owner.settings) as reader:
                assert reader.query_rows("SELECT 1") == [(1,)]
            break
        except RetryableWarehouseError:
            assert time.monotonic() < deadline, "the slots of closed connections did not come back"
            time.sleep(0.1)
