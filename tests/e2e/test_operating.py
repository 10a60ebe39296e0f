"""The operator's answers (docs/operating.md), each run against the real pipeline (broker, Spark job, chDB).

Backup and restore: a run is processed and backed up; a second run is processed; the backup is restored,
which takes every table back to the first run exactly; the job started again re-reads the second run from
Kafka, and every table reconciles with both runs. While the job runs, the backup is refused in one line. A
backup taken after a kill -9 in the middle of a batch restores as exactly as the crash itself would (in the fault
suite, ``make faults``: the kill is retried until it lands inside a batch).

Changing the contract: a v2 with a new optional field passes ``rtap contract check`` and a breaking one is
refused in one line; v1 and v2 events in one topic go through the v1 job together and reconcile; then the job
of a copy of rtap that ships v2 stores the new field in its column, and v1 and v2 events reconcile again.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastjsonschema
import orjson
import pytest
from confluent_kafka import Producer

import rtap
from rtap.contract import load_schema, validate_event
from rtap.contract.model import FORMAT_PATTERNS
from rtap.errors import ContractError
from rtap.generate import ClickstreamGenerator, GroundTruth
from rtap.ingest.producer import producer_config
from rtap.ingest.topics import ensure_topics
from rtap.runtime.broker import LocalKafka
from rtap.settings import Settings, child_environment
from rtap.stream.checkpoint import committed_batches, planned_batches
from rtap.warehouse import create_client
from rtap.warehouse.migrate import load_migrations
from tests.support.faults import LARGE, wait_for_next_minute, without_late
from tests.support.paths import REPO_ROOT
from tests.support.pipeline import (
    StreamProcess,
    assert_tables_equal_truth,
    pipeline_settings,
    produce,
    run_until_drained,
)

pytestmark = pytest.mark.timeout(1500)

RUN = 4_000


def run_rtap(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """An rtap command as the operator runs it, with the pipeline's settings."""
    return subprocess.run(
        [sys.executable, "-m", "rtap", *args], env=child_environment(settings), capture_output=True, text=True
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_a_restored_backup_catches_up_from_kafka_and_every_table_is_exact(broker: LocalKafka, tmp_path: Path) -> None:
    settings = pipeline_settings(broker, tmp_path / "data", "backup")
    first = produce(settings, count=RUN, seed=81)
    first_done = datetime.now(UTC)
    run_until_drained(settings, first.totals().produced)

    saved = run_rtap(settings, "backup", str(tmp_path / "backup"))
    assert saved.returncode == 0, saved.stdout + saved.stderr
    assert "and the checkpoint to" in saved.stdout
    # Spark's offsets and commits, no state store (docs/operating.md: what an upgrade of Spark must read).
    checkpoint = {p.name for p in (tmp_path / "backup" / "checkpoints" / "stream").iterdir()}
    assert {"offsets", "commits", "sources", "metadata"} <= checkpoint
    assert "state" not in checkpoint

    wait_for_next_minute(first_done)
    second = produce(without_late(settings), count=RUN, seed=82)
    both = GroundTruth.merge_all([first, second])
    job = StreamProcess(settings)
    try:
        job.wait_processed(first.totals().produced + 1)  # it owns the warehouse and works on the second run
        refused = one_line_error(run_rtap(settings, "backup", str(tmp_path / "while-running")))
        assert f"is in use by rtap process {job.process.pid}" in refused
        job.wait_processed(both.totals().produced)
        assert job.stop() == 0
    except BaseException:
        if job.process.poll() is None:
            job.kill()
        raise
    assert not (tmp_path / "while-running").exists()
    assert_tables_equal_truth(settings, both)

    restored = run_rtap(settings, "restore", str(tmp_path / "backup"))
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert_tables_equal_truth(settings, first)  # back at the backup's moment, exactly

    run_until_drained(settings, both.totals().produced)
    assert_tables_equal_truth(settings, both)  # the second run read again from Kafka, nothing twice


def in_a_batch(checkpoint: Path) -> bool:
    """Spark has planned a batch it has not committed: the job is in the middle of it."""
    planned, committed = planned_batches(checkpoint), committed_batches(checkpoint)
    return bool(planned) and (not committed or planned[-1] > committed[-1])


def kill_in_a_batch(settings: Settings, after: int, attempts: int = 5) -> None:
    """kill -9 the job while a batch is planned and not committed (again from a restart when the batch
    committed between the look and the kill)."""
    checkpoint = settings.paths.checkpoints / "stream"
    for _ in range(attempts):
        job = StreamProcess(settings)
        try:
            job.wait_processed(after)
            deadline = time.monotonic() + 60
            while not in_a_batch(checkpoint) and time.monotonic() < deadline:
                time.sleep(0.002)
        finally:
            job.kill()
        if in_a_batch(checkpoint):
            return
    raise AssertionError(f"no kill landed inside a batch in {attempts} attempts")


@pytest.mark.faults
@pytest.mark.skipif(not LARGE, reason="fault suite only (make faults): CI kills mid-batch in test_pipeline.py")
def test_a_backup_taken_in_the_middle_of_a_batch_restores_to_an_exact_catch_up(
    broker: LocalKafka, tmp_path: Path
) -> None:
    """kill -9 while Spark has a batch planned and not committed, then back up: the backup holds the batch as
    the crash left it (perhaps partly written), and after the restore the job runs it again, deduplicated by
    the tokens the copy kept (rtap.warehouse.chdb.backup)."""
    settings = pipeline_settings(broker, tmp_path / "data", "crashbackup", max_batch_records=100)
    truth = produce(settings, count=RUN, seed=83)
    produced = truth.totals().produced
    kill_in_a_batch(settings, after=produced // 5)
    saved = run_rtap(settings, "backup", str(tmp_path / "backup"))
    assert saved.returncode == 0, saved.stdout + saved.stderr
    assert in_a_batch(tmp_path / "backup" / "checkpoints" / "stream")

    run_until_drained(settings, produced)
    assert_tables_equal_truth(settings, truth)
    restored = run_rtap(settings, "restore", str(tmp_path / "backup"))
    assert restored.returncode == 0, restored.stdout + restored.stderr
    run_until_drained(settings, produced)
    assert_tables_equal_truth(settings, truth)


# -- changing the contract ---------------------------------------------------------------------------------------

NEW_FIELD = "coupon_code"
V1_END = b',"schema_version":1}'
V2_END = b',"' + NEW_FIELD.encode() + b'":"WINTER26","schema_version":1}'


def contract_v2() -> dict[str, Any]:
    """Contract v1 plus one optional field: the change docs/operating.md walks through."""
    schema = copy.deepcopy(load_schema(1))
    schema["$id"] = "urn:rtap:contract:clickstream-event:2"
    schema["properties"][NEW_FIELD] = {"type": ["string", "null"], "maxLength": 64}
    return schema


def accepted_by_v1(record: bytes) -> bool:
    try:
        validate_event(record)
    except ContractError:
        return False
    return True


def produce_v1_and_v2(settings: Settings, count: int, seed: int) -> tuple[GroundTruth, list[tuple[bytes, bytes]]]:
    """The generator's run with every other record that is a valid v1 event written as a v2 event (the same
    event and the new field): producers moved to v2 one at a time share the topic with those still on v1.
    The new field changes no outcome, so the generator's truth is the truth of the mixed run. Returns the truth
    and each rewritten record with its original."""
    kafka = settings.kafka
    ensure_topics(kafka, timeout_s=15.0)
    generator = ClickstreamGenerator(
        settings.generator.model_copy(update={"seed": seed}),
        partitions=kafka.partitions,
        watermark_delay_s=settings.stream.watermark_delay_s,
    )
    errors: list[str] = []

    def delivered(error: object, _message: object) -> None:
        if error is not None:
            errors.append(str(error))

    producer = Producer({**producer_config(kafka, settings.producer), "on_delivery": delivered})
    rewritten: list[tuple[bytes, bytes]] = []
    for start in range(0, count, 1024):
        block = generator.generate_block([time.time_ns() // 1_000_000] * min(1024, count - start))
        for index, (value, key) in enumerate(zip(block.values, block.keys, strict=True)):
            if index % 2 and value.endswith(V1_END):
                rewritten.append((value, value[: -len(V1_END)] + V2_END))
                value = rewritten[-1][1]
            producer.produce(kafka.topic, value, key)
        producer.poll(0)
    assert producer.flush(60) == 0
    assert not errors, errors[:3]
    return generator.truth, rewritten


# The documented steps (docs/operating.md, Changing the contract) applied to a copy of this rtap.
MIGRATION = f"""-- Contract v2: {NEW_FIELD}, an optional field, stored where v1 readers ignore it.
ALTER TABLE {{db}}.events ADD COLUMN IF NOT EXISTS {NEW_FIELD} Nullable(String) AFTER schema_version;
ALTER TABLE {{db}}.late_events ADD COLUMN IF NOT EXISTS {NEW_FIELD} Nullable(String) AFTER schema_version;
"""


# What the v2 job makes of a v2 event whose new field breaks its rule (the job's parse and classify, no Spark).
BROKEN_V2_EVENT = f"""
from tests.support.records import classify_records, event
row = classify_records([(0, 1, event(1, {NEW_FIELD}=5))]).to_pylist()[0]
print(row["status"], row["error"])
"""


def rtap_with_contract_v2(folder: Path) -> tuple[Path, int]:
    """A copy of this rtap's package that ships contract v2: the schema file, ``CURRENT_VERSION = 2`` and the
    migration that adds the column. Returns the folder to put on PYTHONPATH, and the migration's number."""
    package = folder / "rtap"
    shutil.copytree(Path(rtap.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    schema = orjson.dumps(contract_v2(), option=orjson.OPT_INDENT_2)
    (package / "contract" / "schemas" / "clickstream-event.v2.json").write_bytes(schema)
    model = package / "contract" / "model.py"
    text = model.read_text()
    assert text.count("\nCURRENT_VERSION = 1\n") == 1
    model.write_text(text.replace("\nCURRENT_VERSION = 1\n", "\nCURRENT_VERSION = 2\n"))
    version = load_migrations()[-1].version + 1
    (package / "warehouse" / "migrations" / f"{version:04d}_contract_v2.sql").write_text(MIGRATION)
    return folder, version


def test_a_contract_v2_with_a_new_optional_field_ships_and_v1_and_v2_events_reconcile(
    broker: LocalKafka, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = pipeline_settings(broker, tmp_path / "data", "contract")
    v2 = contract_v2()
    v2_path = tmp_path / "clickstream-event.v2.json"
    v2_path.write_bytes(orjson.dumps(v2))
    checked = run_rtap(settings, "contract", "check", "--new", str(v2_path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "compatible with contract v1 (only new optional fields)" in checked.stdout

    breaking = copy.deepcopy(v2)
    breaking["required"].append(NEW_FIELD)  # v1 events lack it: refused
    breaking_path = tmp_path / "clickstream-event.v2-breaking.json"
    breaking_path.write_bytes(orjson.dumps(breaking))
    refused = one_line_error(run_rtap(settings, "contract", "check", "--new", str(breaking_path)))
    assert f"required: {NEW_FIELD} is newly required: v1 events lack it" in refused

    # Producers first: some send v2 while the job still reads v1. Nothing fails; the job ignores the new field.
    first, rewritten = produce_v1_and_v2(settings, count=RUN, seed=91)
    first_done = datetime.now(UTC)
    totals = first.totals()
    assert len(rewritten) > RUN // 4
    assert min(totals.duplicates, totals.late, totals.dead_letters) > 0
    # Every rewritten record that v1 accepts is a v2 event, and so is its v1 original (v2 reads both).
    validate_v2 = fastjsonschema.compile(v2, formats=FORMAT_PATTERNS)
    valid = [(old, new) for old, new in rewritten if accepted_by_v1(new)]
    assert len(valid) > len(rewritten) // 2
    for old, new in valid:
        assert validate_v2(orjson.loads(new))[NEW_FIELD] == "WINTER26"
        assert NEW_FIELD not in validate_v2(orjson.loads(old))
    run_until_drained(settings, totals.produced)
    assert_tables_equal_truth(settings, first)

    # Then the job: this rtap with contract v2 shipped. `rtap contract check` checks it against v1 and the job's
    # start applies its migration; the v2 events of the next run keep their field in a column.
    source, migration = rtap_with_contract_v2(tmp_path / "rtap-v2")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(source), os.environ.get("PYTHONPATH", "")]))
    shipped = run_rtap(settings, "contract", "check")
    assert shipped.returncode == 0, shipped.stdout + shipped.stderr
    assert "contract v2: compatible with v1" in shipped.stdout
    verdict = subprocess.run(
        [sys.executable, "-c", BROKEN_V2_EVENT],
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(source), str(REPO_ROOT)])},
        capture_output=True,
        text=True,
    )
    assert verdict.stdout.strip() == f"dead_letter {NEW_FIELD}: expected string, got number", verdict.stderr
    wait_for_next_minute(first_done)
    second, rewritten = produce_v1_and_v2(without_late(settings), count=RUN, seed=92)
    both = GroundTruth.merge_all([first, second])
    run_until_drained(settings, both.totals().produced)
    assert_tables_equal_truth(settings, both)

    v2_ids = {orjson.loads(new)["event_id"].lower() for _, new in rewritten if accepted_by_v1(new)}
    with create_client(settings) as client:
        assert migration in {int(v) for (v,) in client.query_rows("SELECT version FROM {db}.schema_migrations")}
        stored = client.query_rows(
            f"SELECT toString(event_id), {NEW_FIELD} FROM {{db}}.events FINAL "
            "WHERE event_time >= {since:DateTime64(3, 'UTC')}",
            parameters={"since": first_done},
        )
    with_field = {event_id for event_id, value in stored if value is not None}
    assert with_field
    assert with_field <= v2_ids
    assert {value for _, value in stored} == {"WINTER26", None}  # v1 and v2 events side by side
    assert len(stored) == second.totals().accepted
