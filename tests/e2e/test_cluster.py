"""The cluster profile: the same job on three KRaft brokers and a Spark standalone cluster, with a broker and a
worker killed (SIGKILL) while records are produced and consumed; every table must still equal the truth.

Only settings differ from the local runs (``LocalCluster.pipeline_settings``): the bootstrap servers list all
three brokers, the topics are replicated three times with two in-sync replicas required, and the job's
``--master`` is the standalone master. The producer keeps ``acks=all`` working on the two surviving replicas;
Spark re-runs the lost executor's tasks on the other worker. ``make cluster-test`` runs this file alone.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from rtap.generate import GroundTruth
from rtap.ingest.producer import ProduceReport, produce_run
from rtap.ingest.topics import ensure_topics
from rtap.kafka_admin import registered_brokers
from rtap.runtime.cluster import LocalCluster
from rtap.settings import GeneratorSettings, Settings, StreamSettings, child_environment
from tests.support.paths import REPO_ROOT
from tests.support.pipeline import StreamProcess, assert_tables_equal_truth
from tests.support.waiting import settled

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

RATE = 50.0
# Spark start-up and the first batch on a loaded 2-core machine, with executors on two workers.
FIRST_BATCH_TIMEOUT_S = 420.0
# Each fault is followed by this much production and consumption before the next step.
AFTER_FAULT_S = 12.0
# Kafka fences a broker that stopped heartbeating after broker.session.timeout.ms (9 s).
FENCED_TIMEOUT_S = 60.0


def cluster_settings(data_dir: Path) -> Settings:
    """The e2e pipeline's dirty generator and fast trigger; nothing cluster-specific (that is the point)."""
    name = f"cluster-{uuid.uuid4().hex[:8]}"
    base = Settings(
        data_dir=data_dir,
        jars_dir=REPO_ROOT / "jars" / "lib",
        generator=GeneratorSettings(duplicate_rate=0.03, late_rate=0.02, malformed_rate=0.02, late_by_seconds=120),
        stream=StreamSettings(trigger_interval_s=0.5, max_batch_records=5000),
    )
    return base.model_copy(
        update={"kafka": base.kafka.model_copy(update={"topic": f"{name}.events", "dlq_topic": f"{name}.dlq"})}
    )


def test_broker_and_worker_killed_mid_run_on_the_cluster_loses_nothing(tmp_path: Path) -> None:
    with LocalCluster(cluster_settings(tmp_path)) as cluster:
        settings = cluster.pipeline_settings()
        assert settings.stream.master == cluster.layout.master_url
        ensure_topics(settings.kafka)
        assert_replicated(settings, replicas=3)

        stop = threading.Event()
        reports: list[ProduceReport] = []
        producer = threading.Thread(
            target=lambda: reports.append(produce_run(settings, rate=RATE, duration_s=600, seed=29, stop=stop)),
            daemon=True,
        )
        producer.start()
        job = StreamProcess(settings)
        try:
            before = job.wait_processed(1, timeout_s=FIRST_BATCH_TIMEOUT_S)

            # Batches follow each other back to back here, so the lost executor is usually running tasks.
            cluster.spark.kill_worker(0)
            job.wait_processed(before + 1)
            # The master learns of the loss on its own (the worker's connection closing), perhaps after that batch.
            assert settled(lambda: cluster.spark.state().alive_workers, lambda alive: alive == 1, 30) == 1

            # The driver's admin client waits for the dead leader until its call times out (60 s by default)
            # before it reads the new leaders: a pause, then the job catches up by itself.
            cluster.kafka.kill(1)
            wait_brokers(cluster, 2)
            time.sleep(AFTER_FAULT_S)
            stop.set()

            producer.join(timeout=120)
            assert not producer.is_alive(), "the producer did not finish"
            (report,) = reports
            assert report.failed == 0, f"{report.failed} records not delivered with one broker down"
            truth = GroundTruth.from_json(report.truth_path.read_bytes())
            totals = truth.totals()
            assert totals.produced == report.produced > RATE * AFTER_FAULT_S
            assert min(totals.duplicates, totals.late, totals.dead_letters) > 0  # the run really is dirty

            job.wait_processed(totals.produced)
            assert job.stop() == 0
        except BaseException:
            stop.set()
            if job.process.poll() is None:
                job.kill()
            raise
        assert job_ran_on_executors(settings)
        assert_tables_equal_truth(settings, truth)
        reconcile = subprocess.run(
            [sys.executable, "-m", "rtap", "reconcile"], env=child_environment(settings), capture_output=True, text=True
        )
        assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr


def assert_replicated(settings: Settings, replicas: int) -> None:
    """Every partition of both topics has ``replicas`` replicas (asked until every broker knows the new topics)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({**settings.kafka.client_config()})
    names = (settings.kafka.topic, settings.kafka.dlq_topic)
    deadline = time.monotonic() + 30
    while True:
        topics = admin.list_topics(timeout=10).topics
        if all(name in topics and topics[name].error is None for name in names) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for name in names:
        assert {len(p.replicas) for p in topics[name].partitions.values()} == {replicas}, name


def wait_brokers(cluster: LocalCluster, count: int) -> None:
    deadline = time.monotonic() + FENCED_TIMEOUT_S
    while registered_brokers(cluster.kafka.kafka_settings()) != count:
        assert time.monotonic() < deadline, f"the cluster did not drop to {count} brokers"
        time.sleep(0.5)


def job_ran_on_executors(settings: Settings) -> bool:
    """Whether the job's tasks ran in the workers' executors (their work dirs hold the app's executor logs)."""
    return any((settings.data_dir / "cluster").glob("spark-worker-*/work/app-*/*/stderr"))
