"""``rtap jvm archive``: write the class-data sharing archives of the broker's and Spark's JVMs (``rtap.runtime.jvm``).

An archive holds the classes a JVM loaded during one run, so the run that writes it should load what
``rtap up`` loads: this one is the pipeline itself, briefly, in a scratch directory on free ports. A broker
starts, the stream job classifies two micro-batches of generated records (valid, duplicate, late and broken
ones) and writes them to a scratch chDB, then both JVMs exit and write their archives, which replace the
installed ones only when both runs succeeded.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rtap.errors import PipelineError
from rtap.runtime.jvm import ARCHIVES, ArchiveName, archive_dir, archive_path, pending_path
from rtap.settings import LOOPBACK, Settings

if TYPE_CHECKING:
    from rtap.stream.job import StreamJob

TRAINING_EVENTS = 2_000  # per micro-batch; enough for every record kind of the generator to occur
BATCH_TIMEOUT_S = 180.0


def build_archives(settings: Settings, progress: Callable[[str], None] = lambda _: None) -> list[Path]:
    """Run the pipeline once with archive-writing JVMs; install and return the archives."""
    from rtap.ingest.producer import produce_run
    from rtap.ingest.topics import ensure_topics
    from rtap.runtime.broker import LocalKafka
    from rtap.runtime.ports import free_ports
    from rtap.stream.job import StreamJob
    from rtap.stream.spark import build_session, shutdown_jvm
    from rtap.warehouse import create_client
    from rtap.warehouse.migrate import apply_migrations

    archive_dir(settings).mkdir(parents=True, exist_ok=True)
    for name in ARCHIVES:
        pending_path(settings, name).unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="rtap-jvm-archive-") as scratch_dir:
        port, controller_port = free_ports(2)
        kafka = settings.kafka.model_copy(
            update={
                "host": LOOPBACK,
                "port": port,
                "controller_port": controller_port,
                "bootstrap_servers": f"{LOOPBACK}:{port}",
            }
        )
        scratch = settings.model_copy(
            update={
                "data_dir": Path(scratch_dir),
                "kafka": kafka,
                "warehouse": settings.warehouse.model_copy(update={"backend": "chdb"}),
                "stream": settings.stream.model_copy(update={"master": "local[*]"}),
                "jvm_class_sharing": "dump",
            }
        )
        with LocalKafka(scratch):  # its SIGTERM stop at the end of this block makes it write its archive
            progress("broker started")
            ensure_topics(scratch.kafka)
            spark = build_session(scratch)
            try:
                with create_client(scratch) as client:
                    apply_migrations(client)
                    job = StreamJob(scratch, client, spark=spark)
                    runner = threading.Thread(target=job.run, name="rtap-archive-job", daemon=True)
                    runner.start()
                    try:
                        for batch in range(2):
                            produce_run(scratch, rate=0, count=TRAINING_EVENTS, seed=batch + 1)
                            _wait_until_read(job, runner, at_least_batch=batch)
                            progress(f"micro-batch {batch} classified and written")
                    finally:
                        job.stop()
                        runner.join(timeout=60)
            finally:
                shutdown_jvm(spark)
            progress("Spark's JVM exited")
    return [_install(settings, name) for name in ARCHIVES]


def _wait_until_read(job: StreamJob, runner: threading.Thread, *, at_least_batch: int) -> None:
    """Until a batch numbered ``at_least_batch`` or later committed with nothing left to read."""
    deadline = time.monotonic() + BATCH_TIMEOUT_S
    while time.monotonic() < deadline:
        last = job.last_batch
        if last is not None and last.batch_id >= at_least_batch and last.kafka_lag == 0:
            return
        if not runner.is_alive():
            raise PipelineError("the stream job stopped while the JVM archives were being written; see its log above")
        time.sleep(0.2)
    raise PipelineError(f"the stream job did not read its input within {BATCH_TIMEOUT_S:.0f} s")


def _install(settings: Settings, name: ArchiveName) -> Path:
    pending = pending_path(settings, name)
    if not pending.is_file():
        raise PipelineError(f"the {name} JVM exited without writing its class-data archive ({pending})")
    target = archive_path(settings, name)
    pending.replace(target)  # atomic: a JVM starting meanwhile maps the old file or the new one
    return target
