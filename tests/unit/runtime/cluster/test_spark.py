"""The Spark standalone daemons of the local cluster (``rtap.runtime.cluster.spark``), built without starting them."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtap.runtime.cluster.layout import ClusterLayout
from rtap.runtime.cluster.spark import MASTER_MAIN, WORKER_MAIN, MasterState, SparkStandalone, spark_home


def test_daemons_bind_loopback_ports_and_workers_register_with_the_master(
    tmp_path: Path, layout: ClusterLayout
) -> None:
    spark = SparkStandalone(layout, tmp_path, worker_cores=1, worker_memory="768m")
    home = spark_home()

    master = spark.master.command(home)
    worker = spark.workers[1].command(home)

    assert master[:2] == [str(home / "bin" / "spark-class"), MASTER_MAIN]
    assert master[master.index("--port") + 1] == "17077"
    assert worker[1] == WORKER_MAIN
    assert worker[worker.index("--host") + 1] == "127.0.0.1"
    assert worker[worker.index("--memory") + 1] == "768m"
    assert worker[worker.index("--work-dir") + 1].startswith(str(tmp_path))
    assert "spark://127.0.0.1:17077" in worker
    assert worker[-1] == str(spark.workers[1].properties_file)  # marks the process as this cluster's


def test_a_daemon_never_started_is_not_running(tmp_path: Path, layout: ClusterLayout) -> None:
    spark = SparkStandalone(layout, tmp_path)

    assert set(spark.pids().values()) == {None}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"status": "ALIVE", "cores": 2, "workers": [{"state": "ALIVE"}, {"state": "DEAD"}]},
            MasterState("ALIVE", 1, 2),
        ),
        ({}, MasterState("UNKNOWN", 0, 0)),
    ],
)
def test_master_state_counts_alive_workers_only(raw: dict[str, object], expected: MasterState) -> None:
    assert MasterState.from_json(raw) == expected
