"""The floor of per-event freshness: a pass-through job that only records what each micro-batch brought and when.

Per-event freshness of the full job (``rtap_bench.traffic``) has two parts: what any micro-batch design on
this machine costs (Spark's Kafka source, its planning, a trigger, the fetch of the records to the driver) and
what rtap adds (parse, validate, deduplicate, write). The floor measures the first alone, in the same run, at
the same rates, with the same sender, so the full job's figures can be read against it on any machine
(issue 22: p99 <= 2 x the floor's).

The floor job (``python -m rtap_bench.floor``, a process of its own like ``rtap up``'s job): the session from
``rtap.stream.spark.build_session`` with rtap's default stream settings; Spark's Kafka source with the job's
options (``rtap.stream.job.kafka_source``: the same ``kafka.fetch.max.wait.ms``, isolation level and
``failOnDataLoss``, a batch cap by the same rule), the same polling delay and trigger (0: the next batch as soon
as the previous one is done); a ``foreachBatch`` that reads the batch in one task per core as the job does, takes
each record's ``event_id`` and ``event_time`` to the driver (``from_json`` in the JVM: a truncated record gives
nulls), notes the time (its "commit") and writes them as one Arrow file per batch, named with its record count so
the harness can count without opening it.

Freshness per event = that time minus the event's ``event_time``, over the events of the step's run (event
time within the run, so the two-minute-late events fall out as they do for the job), each event once at its
first batch (a duplicate re-send counts as the job counts it: once, at its first copy): the same definition
and percentiles (linear between closest ranks) as the full job's. Each step is measured once everything sent
was recorded, as for the job; its files are then deleted, so the disk holds one step at a time.
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from rtap.errors import BrokerError, PipelineError
from rtap.settings import Settings
from rtap_bench.drain import spark_process, tail, time_split
from rtap_bench.procfs import tree_peak_rss_mb
from rtap_bench.search import PRODUCER
from rtap_bench.sustain import PRODUCER_BEHIND_LIMIT_S
from rtap_bench.traffic import Sent, send

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

BATCHES = "batches"
LOG = "floor.log"
POLL_S = 0.2
COMMITTED = b"committed"
SCHEMA = pa.schema([("event_id", pa.string()), ("event_ms", pa.int64())])


def batch_file(directory: Path, batch_id: int, rows: int) -> Path:
    return directory / f"batch-{batch_id:09d}-{rows}.arrow"


def rows_in(path: Path) -> int:
    """The record count in a batch file's name (:func:`batch_file`)."""
    return int(path.stem.rsplit("-", 1)[1])


def write_batch(directory: Path, batch_id: int, records: pa.Table, committed: float) -> Path:
    """One batch's records and when it got them, atomically (the harness never sees half a file)."""
    path = batch_file(directory, batch_id, records.num_rows)
    partial = path.with_suffix(".partial")
    table = records.cast(SCHEMA).replace_schema_metadata({COMMITTED: repr(committed).encode()})
    with pa.OSFile(str(partial), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    partial.rename(path)
    return path


def read_batches(paths: list[Path]) -> pa.Table:
    """Every record of ``paths`` with its batch's time: event_id, event_ms, committed (epoch s)."""
    tables = []
    for path in paths:
        with pa.OSFile(str(path)) as source:
            table = pa.ipc.open_file(source).read_all()
        committed = float((table.schema.metadata or {})[COMMITTED])
        tables.append(table.append_column("committed", pa.array([committed] * table.num_rows, pa.float64())))
    if not tables:
        return SCHEMA.empty_table().append_column("committed", pa.array([], pa.float64()))
    return pa.concat_tables(tables).replace_schema_metadata(None)


def floor_freshness(records: pa.Table, started: float, ended: float) -> dict[str, Any]:
    """Per-event freshness of the events due in [started, ended + 1 s) (module docstring; the keys of
    ``rtap_bench.traffic.freshness``)."""
    since, until = int(started * 1000), int(ended * 1000) + 1000
    times = records["event_ms"]
    chosen = records.filter(pc.and_(pc.greater_equal(times, since), pc.less(times, until)))
    if chosen.num_rows == 0:
        return {"events": 0, "p50_s": None, "p99_s": None, "max_s": None, "stored_after_end_s": None}
    first = chosen.group_by("event_id").aggregate([("committed", "min"), ("event_ms", "min")])
    fresh = pc.subtract(first["committed_min"], pc.divide(pc.cast(first["event_ms_min"], pa.float64()), 1000.0))
    p50, p99 = pc.quantile(fresh, q=[0.5, 0.99], interpolation="linear").to_pylist()
    return {
        "events": first.num_rows,
        "p50_s": p50,
        "p99_s": p99,
        "max_s": pc.max(fresh).as_py(),
        "stored_after_end_s": pc.max(first["committed_min"]).as_py() - ended,
    }


class FloorJob:
    """The running floor job and everything sent to it: one step at a time, each recorded before the next."""

    def __init__(self, settings: Settings, process: subprocess.Popen[bytes], timeout_s: float) -> None:
        self.settings = settings
        self._process = process
        self._timeout_s = timeout_s
        self._directory = settings.data_dir / BATCHES
        self._consumed_rows = 0  # records of the batch files already read and deleted
        self.sends: list[Sent] = []

    def _files(self) -> list[Path]:
        return sorted(self._directory.glob("batch-*.arrow"))

    def _wait_recorded(self, expected: int) -> None:
        deadline = time.monotonic() + self._timeout_s
        while (recorded := self._consumed_rows + sum(rows_in(p) for p in self._files())) < expected:
            if self._process.poll() is not None:
                log = self.settings.data_dir / LOG
                raise PipelineError(f"the floor job exited with {self._process.returncode}: {tail(log)}")
            if time.monotonic() > deadline:
                raise PipelineError(
                    f"the floor job recorded {recorded} of {expected} records in {self._timeout_s:.0f} s"
                )
            time.sleep(POLL_S)

    def _take(self) -> tuple[pa.Table, int]:
        """The records of every batch recorded so far, and how many batches; their files are deleted."""
        paths = self._files()
        records = read_batches(paths)
        for path in paths:
            path.unlink()
        self._consumed_rows += records.num_rows
        return records, len(paths)

    def offer(self, rate: float, seconds: float) -> tuple[Sent, pa.Table, int]:
        """One run of the sender; returns once the floor recorded every record sent so far, with them."""
        run = f"f{len(self.sends)}x{uuid.uuid4().hex[:6]}"
        kafka, stream = self.settings.kafka, self.settings.stream
        sent = send(kafka.bootstrap_servers, kafka.topic, rate, seconds, run, len(self.sends), stream.watermark_delay_s)
        if sent.failed:
            raise BrokerError(f"floor: {sent.failed} of {sent.sent} records were not acknowledged")
        self.sends.append(sent)
        self._wait_recorded(sum(s.sent for s in self.sends))
        records, batches = self._take()
        return sent, records, batches

    def step(self, rate: float, seconds: float) -> dict[str, Any]:
        """Offer ``rate`` for ``seconds``; the per-event freshness the floor gave the step's events."""
        sent, records, batches = self.offer(rate, seconds)
        fresh = floor_freshness(records, sent.started, sent.ended)
        return {
            "kind": "floor",
            "rate": rate,
            "achieved_rate": sent.achieved_rate,
            "producer_max_behind_s": sent.producer_max_behind_s,
            "records": sent.sent,
            "batches": batches,
            "freshness": fresh,
            "events_missing": sent.valid - fresh["events"],  # 0: it measured the events the job is measured on
        }


def floor(
    settings: Settings,
    rates: list[float],
    step_s: float,
    warm_up: tuple[float, float],
    lead_in: tuple[float, float],
    timeout_s: float,
) -> dict[str, Any]:
    """The floor job on ``settings`` (its own topic, a broker already running): a warm-up run and a lead-in (each
    (rate, seconds); no lead-in for 0 s), then one step per rate."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    launched = time.time()
    command = [sys.executable, "-m", "rtap_bench.floor"]
    with spark_process(command, settings, settings.data_dir / LOG) as process:
        job = FloorJob(settings, process, timeout_s)
        job.offer(*warm_up)  # the JVM's start-up and the first batch, as for the job
        startup_s = time.time() - launched
        lead = job.step(*lead_in) if lead_in[1] else None  # the compilers' warm-up, as for the job
        steps = [job.step(rate, step_s) for rate in rates]
        peak = tree_peak_rss_mb(process.pid)
    return {
        "job": "Kafka source -> foreachBatch recording event ids and times (rtap_bench.floor)",
        "step_s": step_s,
        "startup_s": startup_s,
        "lead_in": lead,
        "steps": steps,
        "peak_rss_mb": peak,
        "time_split": time_split(settings.data_dir, settings.data_dir / LOG),
    }


def against_floor(job_steps: list[dict[str, Any]], floor_steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per rate the floor ran at: the full job's fixed-rate step and the floor's, p50 and p99 side by side, and
    job / floor. ``sender_behind``: in either step the sender fell behind its schedule, so the figures of that
    step say nothing of its job (``rtap_bench.sustain``)."""
    rows = []
    for step in floor_steps:
        job = next((s for s in job_steps if s["kind"] == "fixed" and s["rate"] == step["rate"]), None)
        job_fresh: dict[str, Any] = {} if job is None else job["freshness"]
        floor_fresh = step["freshness"]
        rows.append(
            {
                "rate": step["rate"],
                "job_p50_s": job_fresh.get("p50_s"),
                "job_p99_s": job_fresh.get("p99_s"),
                "floor_p50_s": floor_fresh["p50_s"],
                "floor_p99_s": floor_fresh["p99_s"],
                "p50_over_floor": _over(job_fresh.get("p50_s"), floor_fresh["p50_s"]),
                "p99_over_floor": _over(job_fresh.get("p99_s"), floor_fresh["p99_s"]),
                "sender_behind": step["producer_max_behind_s"] > PRODUCER_BEHIND_LIMIT_S
                or (job is not None and job["outcome"] == PRODUCER),
            }
        )
    return rows


def _over(top: float | None, bottom: float | None) -> float | None:
    return top / bottom if top is not None and bottom else None


# -- the floor job's own process ------------------------------------------------------------------------------


def _record(batch: DataFrame, batch_id: int, directory: Path) -> None:
    from pyspark.sql import functions as F

    parsed = F.from_json(F.col("value").cast("string"), "event_id string, event_time timestamp").alias("e")
    # One task per core, as the job reads (rtap.stream.spark.parse_batch): not one per Kafka partition.
    records = (
        batch.coalesce(batch.sparkSession.sparkContext.defaultParallelism)
        .select(parsed)
        .select(F.col("e.event_id").alias("event_id"), F.unix_millis(F.col("e.event_time")).alias("event_ms"))
    )
    table = records.toArrow()
    write_batch(directory, batch_id, table, time.time())


def run(settings: Settings, directory: Path) -> None:
    """Run the floor job until SIGTERM or SIGINT (module docstring)."""
    from rtap.stream.caps import DEFAULT_RECORD_BYTES, batch_cap
    from rtap.stream.job import kafka_source
    from rtap.stream.spark import build_session

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())  # only a flag: a py4j call from a signal handler corrupts it
    directory.mkdir(parents=True, exist_ok=True)
    stream = settings.stream
    spark = build_session(settings)
    spark.conf.set("spark.sql.streaming.pollingDelay", f"{int(stream.poll_interval_s * 1000)}ms")
    cap = batch_cap(stream, float(DEFAULT_RECORD_BYTES))
    query = (
        kafka_source(spark, settings, stream.starting_offsets, cap)
        .writeStream.queryName("rtap-floor")
        .foreachBatch(lambda batch, batch_id: _record(batch, batch_id, directory))
        .option("checkpointLocation", str(settings.data_dir / "checkpoint"))
        .trigger(processingTime=f"{stream.trigger_interval_s} seconds")
        .start()
    )
    try:
        while not stop.is_set() and query.isActive:
            query.awaitTermination(1)
        if (failure := query.exception()) is not None:
            raise PipelineError(f"the floor job failed: {failure}")
    finally:
        if query.isActive:
            query.stop()
        spark.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The pass-through floor job: record each batch's events and time.")
    parser.add_argument("--out", type=Path, help=f"where the batch files go (default: RTAP_DATA_DIR/{BATCHES})")
    args = parser.parse_args(argv)
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)  # a line per foreachBatch call says nothing
    run(settings, args.out or settings.data_dir / BATCHES)


if __name__ == "__main__":
    main()
