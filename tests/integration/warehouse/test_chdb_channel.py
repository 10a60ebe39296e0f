"""chDB ownership across processes: a real owner process serves, this process reads through its socket."""

from __future__ import annotations

import os
import select
import signal
import stat
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

from rtap.errors import QueryRejectedError, WarehouseError
from rtap.settings import Settings, WarehouseSettings
from rtap.warehouse import create_client
from rtap.warehouse.chdb.channel import ChannelClient, socket_path
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


def _start_owner(data_dir: Path, database: str) -> Owner:
    env = {**os.environ, "RTAP_DATA_DIR": str(data_dir), "RTAP_CLICKHOUSE_DATABASE": database}
    env.pop("RTAP_CLICKHOUSE_BACKEND", None)
    process = subprocess.Popen(
        [sys.executable, "-c", OWNER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    owner = Owner(process, _settings(data_dir, database), env)
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], READY_TIMEOUT_S)
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
            "SELECT n FROM {db}.numbers WHERE n IN (SELECT k FROM $wanted) AND n < {limit:Int64} ORDER BY n",
            inputs={"wanted": pa.table({"k": [2, 3, 8]})},
            parameters={"limit": 5},
        )
        assert picked.column("n").to_pylist() == [2, 3]
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
