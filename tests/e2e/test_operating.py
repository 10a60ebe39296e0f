"""The operator's answers (docs/operating.md), each run against the real pipeline (broker, Spark job, chDB).

Backup and restore: a run is processed and backed up; a second run is processed; the backup is restored,
which takes every table back to the first run exactly; the job started again re-reads the second run from
Kafka, and every table reconciles with both runs. While the job runs, the backup is refused in one line.

Changing the contract: a v2 with a new optional field passes ``rtap contract check`` and a breaking one is
refused in one line; v1 and v2 events in one topic go through the running job together and reconcile.
"""

from __future__ import annotations

import copy
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

from rtap.contract import load_schema, validate_event
from rtap.contract.model import FORMAT_PATTERNS
from rtap.errors import ContractError
from rtap.generate import ClickstreamGenerator, GroundTruth
from rtap.ingest.producer import producer_config
from rtap.ingest.topics import ensure_topics
from rtap.runtime.broker import LocalKafka
from rtap.settings import Settings, child_environment
from rtap.warehouse import create_client
from tests.support.faults import wait_for_next_minute, without_late
from tests.support.pipeline import StreamProcess, assert_tables_equal_truth, pipeline_settings, produce

pytestmark = pytest.mark.timeout(1500)

RUN = 4_000


def rtap(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """An rtap command as the operator runs it, with the pipeline's settings."""
    return subprocess.run(
        [sys.executable, "-m", "rtap", *args], env=child_environment(settings), capture_output=True, text=True
    )


def drain(settings: Settings, records: int) -> None:
    job = StreamProcess(settings)
    try:
        job.wait_processed(records)
        assert job.stop() == 0
    except BaseException:
        if job.process.poll() is None:
            job.kill()
        raise


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
    drain(settings, first.totals().produced)

    saved = rtap(settings, "backup", str(tmp_path / "backup"))
    assert saved.returncode == 0, saved.stdout + saved.stderr
    assert "and the checkpoint to" in saved.stdout

    wait_for_next_minute(first_done)
    second = produce(without_late(settings), count=RUN, seed=82)
    both = GroundTruth.merge_all([first, second])
    job = StreamProcess(settings)
    try:
        job.wait_processed(first.totals().produced + 1)  # it owns the warehouse and works on the second run
        refused = one_line_error(rtap(settings, "backup", str(tmp_path / "while-running")))
        assert f"is in use by rtap process {job.process.pid}" in refused
        job.wait_processed(both.totals().produced)
        assert job.stop() == 0
    except BaseException:
        if job.process.poll() is None:
            job.kill()
        raise
    assert not (tmp_path / "while-running").exists()
    assert_tables_equal_truth(settings, both)

    restored = rtap(settings, "restore", str(tmp_path / "backup"))
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert_tables_equal_truth(settings, first)  # back at the backup's moment, exactly

    drain(settings, both.totals().produced)
    assert_tables_equal_truth(settings, both)  # the second run read again from Kafka, nothing twice


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


def test_a_contract_v2_with_a_new_optional_field_ships_and_v1_and_v2_events_reconcile(
    broker: LocalKafka, tmp_path: Path
) -> None:
    settings = pipeline_settings(broker, tmp_path / "data", "contract")
    v2 = contract_v2()
    v2_path = tmp_path / "clickstream-event.v2.json"
    v2_path.write_bytes(orjson.dumps(v2))
    checked = rtap(settings, "contract", "check", "--new", str(v2_path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "compatible with contract v1 (only new optional fields)" in checked.stdout

    breaking = copy.deepcopy(v2)
    breaking["required"].append(NEW_FIELD)  # v1 events lack it: refused
    breaking_path = tmp_path / "clickstream-event.v2-breaking.json"
    breaking_path.write_bytes(orjson.dumps(breaking))
    refused = one_line_error(rtap(settings, "contract", "check", "--new", str(breaking_path)))
    assert f"required: {NEW_FIELD} is newly required: v1 events lack it" in refused

    truth, rewritten = produce_v1_and_v2(settings, count=RUN, seed=91)
    totals = truth.totals()
    assert len(rewritten) > RUN // 4
    assert min(totals.duplicates, totals.late, totals.dead_letters) > 0

    # Every rewritten record that v1 accepts is a v2 event, and so is its v1 original (v2 reads both).
    validate_v2 = fastjsonschema.compile(v2, formats=FORMAT_PATTERNS)
    valid = [(old, new) for old, new in rewritten if accepted_by_v1(new)]
    assert len(valid) > len(rewritten) // 2
    for old, new in valid:
        assert validate_v2(orjson.loads(new))[NEW_FIELD] == "WINTER26"
        assert NEW_FIELD not in validate_v2(orjson.loads(old))

    drain(settings, totals.produced)
    assert_tables_equal_truth(settings, truth)
    with create_client(settings) as client:
        (columns,) = client.query_rows(
            "SELECT count() FROM system.columns WHERE database = {database:String} AND table = 'events' "
            "AND name = {name:String}",
            parameters={"database": settings.warehouse.database, "name": NEW_FIELD},
        )
    assert columns == (0,)  # a v1 job ignores the field: it reaches a column only with the steps of the docs
