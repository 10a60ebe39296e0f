"""Where the job starts, its warm-up, and what it says when a batch or the warm-up fails (``rtap.stream.job``)."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pyspark.sql import SparkSession

from rtap.contract.model import LEGACY_FORMAT
from rtap.errors import PipelineError
from rtap.settings import KafkaSettings, Settings
from rtap.stream import job as job_module
from rtap.stream.checkpoint import planned_batches
from rtap.stream.job import (
    KEEP_WARM_S,
    WARM_UP_RECORDS,
    StreamJob,
    pipeline_id,
    python_error_line,
    warm_up_samples,
)
from rtap.stream.overlap import in_flight, overlaps, writing
from rtap.stream.sink import BatchStats
from rtap.stream.spark import ParseStage, warm_up
from rtap.warehouse import create_client
from rtap.warehouse.migrate import apply_migrations
from tests.support.records import LEGACY_TOPIC, kafka_records, parse_locally


def test_only_batches_spark_planned_make_the_checkpoint_decide(tmp_path: Path) -> None:
    assert planned_batches(tmp_path) == []  # no checkpoint at all
    offsets = tmp_path / "offsets"
    offsets.mkdir()
    # Spark makes the folder before offsets/0: a first attempt that failed in between planned nothing.
    (offsets / ".0.crc.tmp").write_text("")
    assert planned_batches(tmp_path) == []
    (offsets / "0").write_text("v1")
    (offsets / "1").write_text("v1")
    assert planned_batches(tmp_path) == [0, 1]


# What Spark relays when foreachBatch raised in Python: py4j's message, the traceback, then the JVM's stack.
PY4J = """An exception was raised by the Python Proxy. Return Message: Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/py4j/clientserver.py", line 617, in _call_proxy
    return_value = getattr(self.pool[obj_id], method)(*params)
  File "/work/src/rtap/stream/kafka.py", line 90, in publish
    raise BrokerError(f"dead-letter publish to {self._topic} failed: {exc}") from exc
rtap.errors.BrokerError: dead-letter publish to clickstream.events.dlq failed: Message size too large

\tat py4j.Protocol.getReturnValue(Protocol.java:476)
"""


def test_a_failed_batch_is_named_by_its_python_exception_not_by_traceback() -> None:
    assert python_error_line(RuntimeError(PY4J)) == (
        "rtap.errors.BrokerError: dead-letter publish to clickstream.events.dlq failed: Message size too large"
    )
    assert python_error_line(RuntimeError("Connection refused\nmore")) == "Connection refused"


def test_the_warm_up_parses_the_generators_clickstream_and_builds_every_topics_reader(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, kafka=KafkaSettings(source_topics={LEGACY_TOPIC: LEGACY_FORMAT}))
    now = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)
    samples = warm_up_samples(settings, now)
    assert set(samples) == set(settings.kafka.input_topics)
    for topic in set(samples) - {settings.kafka.topic}:
        assert samples[topic] == [b"{}"]
    values = samples[settings.kafka.topic]
    assert len(values) >= WARM_UP_RECORDS  # one send can add a re-sent copy
    records = [(0, offset, value) for offset, value in enumerate(values)]
    parsed = parse_locally(kafka_records(records, timestamps=[now] * len(records)))
    valid = pc.sum(pc.is_null(parsed["error"])).as_py()
    # Mostly valid events, and some of the generator's dirt: both paths of the contract's reader.
    assert 0.9 * len(values) < valid < len(values)


def test_a_warm_up_that_fails_stops_the_job_with_the_workers_exception_in_one_line(
    spark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path)
    job = StreamJob(settings, client=None)  # type: ignore[arg-type]  # the warm-up writes nothing
    try:
        session, stage = job._warmed_up(spark)  # the real stage, on the generated records
        assert gc.get_freeze_count() > 0  # the driver's start-up is over: its heap is frozen
    finally:
        gc.unfreeze()
    assert session is spark
    assert isinstance(stage, ParseStage)
    # A record of a topic the job has no format for fails in the Python worker, as a broken worker would.
    monkeypatch.setattr(job_module, "warm_up_samples", lambda *_: {"elsewhere": [b"{}"]})
    with pytest.raises(PipelineError) as failure:
        job._warmed_up(spark)
    assert str(failure.value) == (
        "Spark's parse stage failed before the first batch: "
        "rtap.errors.ContractError: no source format configured for topic elsewhere"
    )


def test_the_stage_is_kept_warm_only_after_a_quiet_spell_and_never_beside_a_batch(
    spark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The rule of ``StreamJob._keep_warm`` on a real session (that the workers then survive Spark's idle minute:
    tests/integration/stream/test_job_keep_warm.py)."""
    job = StreamJob(Settings(data_dir=tmp_path), client=None)  # type: ignore[arg-type]  # the stage writes nothing
    stage = ParseStage(
        spark,
        formats=job._settings.kafka.input_topics,
        max_record_bytes=1_000,
        max_future_skew_s=1,
        max_batch_bytes=1 << 27,
    )
    runs: list[Mapping[str, Sequence[bytes]]] = []

    def counted(
        session: SparkSession, parse: ParseStage, samples: Mapping[str, Sequence[bytes]], *, rounds: int
    ) -> list[float]:
        runs.append(samples)
        return warm_up(session, parse, samples, rounds=rounds)

    monkeypatch.setattr(job_module, "warm_up", counted)
    job._stage_ran = time.monotonic() - KEEP_WARM_S + 5
    job._keep_warm(spark, stage)
    assert runs == []  # a stage ran recently
    job._stage_ran = time.monotonic() - KEEP_WARM_S - 1
    with job._one_batch_at_a_time:  # a batch is running
        job._keep_warm(spark, stage)
    assert runs == []
    job._keep_warm(spark, stage)
    assert runs == [{topic: [b"{}"] for topic in job._settings.kafka.input_topics}]  # one record per topic
    assert time.monotonic() - job._stage_ran < 5
    job._keep_warm(spark, stage)
    assert len(runs) == 1  # not again until the next quiet spell
    # A failing run is said in one line and left to the batches; the lock is free again.
    monkeypatch.setattr(job_module, "warm_up", lambda *_, **__: counted(spark, stage, {"elsewhere": [b"{}"]}, rounds=1))
    job._stage_ran = time.monotonic() - KEEP_WARM_S - 1
    job._keep_warm(spark, stage)
    assert "the parse stage's keep-warm run failed: rtap.errors.ContractError: no source format configured" in (
        caplog.text
    )
    assert job._one_batch_at_a_time.acquire(blocking=False)


@pytest.mark.parametrize(("warehouse", "runs_again"), [([0, 1], True), ([0, 1, 2], False)])
def test_a_start_runs_again_the_batch_spark_committed_while_its_writes_were_in_flight(
    tmp_path: Path, warehouse: list[int], runs_again: bool
) -> None:
    """Spark committed batch 2 and planned 3 while batch 2's writes ran beside the next batch's Spark stage, and the
    job stopped: if the warehouse lacks batch 2's commit record, the start takes 2 out of Spark's commit log, so
    Spark runs it again from its recorded offsets; if it has it, the checkpoint is left as it is."""
    settings = Settings(data_dir=tmp_path)
    with create_client(settings) as client:
        apply_migrations(client)
        job = StreamJob(settings, client)
        pipeline = pipeline_id(job.checkpoint)
        for log, last in (("offsets", 3), ("commits", 2)):
            (job.checkpoint / log).mkdir()
            for batch in range(last + 1):
                (job.checkpoint / log / str(batch)).write_text("v1")
        writing(job.checkpoint, 2)
        for batch in warehouse:
            client.command(
                "INSERT INTO {db}.pipeline_batches (query_id, batch_id, started_at, finished_at) "
                "SELECT {query_id:String}, {batch_id:Int64}, now64(3), now64(3)",
                parameters={"query_id": pipeline, "batch_id": batch},
            )
        job._settle()
    assert planned_batches(job.checkpoint) == ([0, 1, 2] if runs_again else [0, 1, 2, 3])
    committed = sorted(int(p.name) for p in (job.checkpoint / "commits").iterdir())
    assert committed == ([0, 1] if runs_again else [0, 1, 2])
    assert in_flight(job.checkpoint) is None


class OrderedSink:
    """A sink whose write records when it ended (after ``release``, if given), beside the test's own steps."""

    def __init__(self, steps: list[str], release: threading.Event | None = None) -> None:
        self.steps = steps
        self.release = release
        self.planned: object = None

    def high_water(self, batch_id: int) -> dict[object, datetime]:
        return {}

    def write(
        self, batch_id: int, classified: pa.Table, started: datetime, high_water: object, planned: object
    ) -> BatchStats:
        self.planned = planned
        if self.release is not None:
            self.release.wait(timeout=10)  # a job that waits for this write never sets it: the order says so
        else:
            time.sleep(0.2)  # long enough for a job that does not wait to return first
        self.steps.append("written")
        rows = classified.num_rows
        return BatchStats(batch_id, rows, rows, 0, 0, 0, 200, None, 0)


@pytest.mark.parametrize(("rows", "behind"), [(899, False), (995, True)])
def test_only_a_batch_of_the_whole_cap_leaves_foreach_batch_before_its_writes_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: int, behind: bool
) -> None:
    """A job that keeps up commits a batch in Spark after its writes (the next batch's Spark stage would contend
    with them for the cores); one whose batch took the whole cap is behind, and lets Spark plan the next batch while
    this one's writes run (rtap.stream.overlap). Spark can cut a backlog's batch a few records short of the cap."""
    assert overlaps(rows, 1_000) is behind
    job = StreamJob(Settings(data_dir=tmp_path), client=None)  # type: ignore[arg-type]  # the sink is the fake's
    job._caps.current = 1_000
    (job.checkpoint / "offsets").mkdir(parents=True)
    (job.checkpoint / "offsets" / "7").write_text(f'v1\n{{}}\n{{"t":{{"0":{rows + 1}}}}}')  # as Spark planned it
    monkeypatch.setattr(job_module, "classify", lambda parsed, **_: parsed)
    steps: list[str] = []
    release = threading.Event() if behind else None
    sink = OrderedSink(steps, release)
    batch = pa.table({"value": list(range(rows))})
    job._process_batch(sink, lambda _: batch, batch=None, batch_id=7)  # type: ignore[arg-type]
    steps.append("returned")
    assert in_flight(job.checkpoint) == (7 if behind else None)
    if release is not None:
        release.set()
    job._writes.wait()
    job._writes.close()
    assert steps == (["returned", "written"] if behind else ["written", "returned"])
    assert in_flight(job.checkpoint) is None
    assert job.last_batch is not None
    assert job.last_batch.input_rows == rows
    assert sink.planned == {("t", 0): rows + 1}  # where Spark planned the batch to end, for the sink's positions


class CommittedBatches:
    """The warehouse as ``_plan_smaller`` asks it: whether a batch's commit row is there."""

    def __init__(self, committed: set[int]) -> None:
        self.committed = committed

    def query_rows(self, statement: str, parameters: Mapping[str, object]) -> list[tuple[int]]:
        assert "pipeline_batches" in statement
        return [(1,)] if parameters["batch_id"] in self.committed else []


@pytest.mark.parametrize(
    ("in_the_warehouse", "offsets_4", "replanned", "limit"),
    [
        (set(), 'v1\n{}\n{"t":{"0":900}}', True, 100),  # 400 records: planned again, a quarter as large
        ({4}, 'v1\n{}\n{"t":{"0":900}}', False, 50_000),  # it fit and committed: Spark replays it as planned
        (set(), "v1\n{}\n{not json", False, 50_000),  # unreadable: left as planned, the limit by the cap
    ],
    ids=["uncommitted", "committed by the warehouse", "unreadable"],
)
def test_after_out_of_memory_only_a_batch_the_warehouse_lacks_is_planned_again_smaller(
    tmp_path: Path, in_the_warehouse: set[int], offsets_4: str, replanned: bool, limit: int
) -> None:
    job = StreamJob(Settings(data_dir=tmp_path), client=CommittedBatches(in_the_warehouse))  # type: ignore[arg-type]
    job._caps.current = 200_000
    (job.checkpoint / "offsets").mkdir(parents=True)
    (job.checkpoint / "commits").mkdir()
    (job.checkpoint / "offsets" / "3").write_text('v1\n{}\n{"t":{"0":500}}')
    (job.checkpoint / "commits" / "3").write_text("v1\n{}")
    (job.checkpoint / "offsets" / "4").write_text(offsets_4)
    job._plan_smaller()
    assert planned_batches(job.checkpoint) == ([3] if replanned else [3, 4])
    assert job._caps.limit == limit
