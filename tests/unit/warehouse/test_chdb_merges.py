"""chDB's background merge threads run at RTAP_CLICKHOUSE_MERGE_NICE, and no other thread does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from rtap.warehouse.chdb.merges import MERGE_THREAD_NAME, TASKS, lower_merge_priority, merge_threads

pytestmark = pytest.mark.skipif(not TASKS.is_dir(), reason="threads are found in Linux's /proc")


@contextmanager
def thread_named(name: str) -> Iterator[int]:
    """A live thread of this process whose kernel name is ``name``; its id."""
    started, done = threading.Event(), threading.Event()
    ids: list[int] = []

    def run() -> None:
        ids.append(threading.get_native_id())
        (TASKS / str(ids[0]) / "comm").write_text(name)
        started.set()
        done.wait(30)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(5)
    try:
        yield ids[0]
    finally:
        done.set()
        thread.join(5)


def test_only_the_merge_threads_get_the_nice_value_and_it_never_goes_down() -> None:
    own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    if own > 14:
        pytest.skip(f"the tests run at nice {own}: no room above it")
    with thread_named(MERGE_THREAD_NAME) as merge, thread_named("ThreadPool") as other:
        assert merge in merge_threads()
        assert other not in merge_threads()
        assert lower_merge_priority(own + 5) == 1
        assert os.getpriority(os.PRIO_PROCESS, merge) == own + 5
        assert os.getpriority(os.PRIO_PROCESS, other) == own
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == own
        assert lower_merge_priority(own + 5) == 0  # already there
        assert lower_merge_priority(own + 2) == 0  # a lower value never raises a merge thread's priority
        assert os.getpriority(os.PRIO_PROCESS, merge) == own + 5


def test_a_thread_that_ended_is_passed_over(tmp_path: Path) -> None:
    """A listing can name a thread that is gone by the time it is read or reniced."""
    (tmp_path / "999999999").mkdir()  # no comm file: ended between the listing and the read
    assert merge_threads(tmp_path) == []


# A process of its own: chDB's threads outlive an engine closed in this one, with whatever value they were given.
ENGINE = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    from rtap.settings import Settings, WarehouseSettings
    from rtap.warehouse import create_client
    from rtap.warehouse.chdb.merges import TASKS, merge_threads

    settings = Settings(data_dir=Path(sys.argv[1]), warehouse=WarehouseSettings(merge_nice=int(sys.argv[2])))
    with create_client(settings) as client:
        client.command("CREATE DATABASE IF NOT EXISTS m")
        client.command("CREATE TABLE m.t (n UInt64) ENGINE = MergeTree ORDER BY n")
        for block in range(6):  # parts for the merge threads to merge
            client.command(f"INSERT INTO m.t SELECT number FROM numbers({block * 1000}, 1000)")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            merges = {t: os.getpriority(os.PRIO_PROCESS, t) for t in merge_threads()}
            if merges and min(merges.values()) >= int(sys.argv[2]):
                break
            time.sleep(0.2)
        others = [os.getpriority(os.PRIO_PROCESS, int(t.name)) for t in TASKS.iterdir() if int(t.name) not in merges]
        rows = client.query_rows("SELECT count() FROM m.t")[0][0]
    print(json.dumps({"merges": list(merges.values()), "others": sorted(set(others)), "rows": rows}))
    """
)


@pytest.mark.parametrize("nice", [10, 0])
def test_the_engine_runs_its_merges_at_the_configured_nice_value(tmp_path: Path, nice: int) -> None:
    done = subprocess.run(
        [sys.executable, "-c", ENGINE, str(tmp_path), str(nice)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    own = os.getpriority(os.PRIO_PROCESS, 0)
    assert seen["rows"] == 6000
    assert seen["merges"], "chDB started no merge thread"
    assert set(seen["merges"]) == {max(own, nice)}
    # The job's threads and chDB's query threads keep the job's priority (chDB raises one of its own threads to -20).
    assert own in seen["others"]
    assert nice <= own or nice not in seen["others"]
