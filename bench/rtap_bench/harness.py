"""One ``rtap bench`` run: a private local broker, one topic, every measurement, reconciliation, results.

Order: B1/P1 produce into a scratch topic (so their repeats do not change what the drains read); the input
topic is then filled once with ``produce_run`` (its ground truth is what P is reconciled against); B2, B3, P
and K all drain that same topic, B3 and P in micro-batches of ``batch_records`` and timed in steady state
(``rtap_bench.drain``); B4 inserts the rows P wrote. Each P repeat gets its own data directory (warehouse and
checkpoint), so every repeat drains the whole topic from the beginning. That broker then stops, and the live
load follows, each part on a fresh broker of its own started the same way: the floor (``rtap_bench.floor``, the
pass-through job at the fixed rates), then the live phase (``rtap_bench.sustain``) against ``rtap up
--no-generator`` (``rtap_bench.stack``), both with rtap's default stream settings and the same sender.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rtap.errors import BrokerError, PipelineError
from rtap.runtime.ports import free_ports
from rtap.settings import KafkaSettings, MetricsSettings, Settings, StreamSettings
from rtap_bench import floor
from rtap_bench.drain import (
    Drain,
    JobRun,
    kafka_engine,
    kafka_engine_error,
    raw_consume,
    run_job,
    spark_drain,
    warehouse_insert,
)
from rtap_bench.procfs import children, cpu_jiffies, peak_rss_mb, steal_share, tree_cpu_s, tree_peak_rss_mb
from rtap_bench.produce import Sample, median_rate, pre_encoded, raw_produce, rtap_produce, summary
from rtap_bench.stack import stack_settings
from rtap_bench.sustain import LEAD_IN_RATE, WARM_UP_RATE, WARM_UP_S, sustain

K_TIMEOUT_S = 180.0  # K reads the topic in one block; when it stalls, waiting longer does not help


@dataclass(frozen=True)
class BenchPlan:
    events: int
    repeats: int
    jars_dir: Path
    drain_timeout_s: float
    smoke: bool
    step_s: float  # each open-loop step of the live phase
    lead_in_s: float  # the live phases' unjudged traffic before their first step (rtap_bench.cli.LEAD_IN_S)
    rates: tuple[float, ...]  # the fixed-rate steps (per-event freshness figures), which seed the search
    max_steps: int  # search steps after the fixed rates
    batch_records: int  # micro-batch size of the drains, B3 and P alike
    k_python: Path | None  # a Python whose chDB creates Kafka tables (K); None: K records the pinned chDB's error


def _timed_cpu(measure: Any, *args: Any) -> Sample:
    """Run one measurement and attach the CPU the whole local stack (this process, the broker) spent."""
    before = tree_cpu_s(os.getpid())
    sample: Sample = measure(*args)
    return Sample(sample.records, sample.seconds, tree_cpu_s(os.getpid()) - before)


def _timed_drain(measure: Any, *args: Any) -> Drain:
    """:func:`_timed_cpu` for a drain: the CPU belongs to the whole drain, first batch included."""
    before = tree_cpu_s(os.getpid())
    drain: Drain = measure(*args)
    whole = Sample(drain.whole.records, drain.whole.seconds, tree_cpu_s(os.getpid()) - before)
    return Drain(drain.steady, whole, drain.batches)


def drain_summary(drains: list[Drain]) -> dict[str, Any]:
    """Steady-state rates over the repeats, with the whole drains (and their CPU per record) beside them."""
    whole = summary([d.whole for d in drains])
    return {
        **summary([d.steady for d in drains]),
        "median_cpu_us_per_record": whole["median_cpu_us_per_record"],
        "whole": whole,
        "batches": [len(d.batches) for d in drains],
        "largest_batch_records": max(b.rows for d in drains for b in d.batches),
    }


def run_bench(plan: BenchPlan, command: str) -> dict[str, Any]:
    """Run every measurement; returns the result document (reconciliation included, pass or fail)."""
    from rtap.ingest.topics import ensure_topics
    from rtap.runtime.broker import LocalKafka

    load_before = os.getloadavg()[0]
    ticks_before = cpu_jiffies()
    with tempfile.TemporaryDirectory(prefix="rtap-bench-") as tmp:
        root = Path(tmp)
        port, controller_port = free_ports(2)
        kafka = KafkaSettings(
            bootstrap_servers=f"127.0.0.1:{port}", host="127.0.0.1", port=port, controller_port=controller_port
        )
        # Batches of one size for both B3 and P; otherwise rtap's defaults. The job's metrics on a free port:
        # a stack running beside the bench has the default one.
        stream = StreamSettings(master="local[2]", max_batch_records=plan.batch_records)
        base = Settings(
            data_dir=root / "bench",
            jars_dir=plan.jars_dir,
            kafka=kafka,
            stream=stream,
            metrics=MetricsSettings(port=0),
        )
        with LocalKafka(base.model_copy(update={"data_dir": root / "broker"})) as broker:
            suffix = uuid.uuid4().hex[:8]
            main = base.model_copy(
                update={
                    "kafka": broker.kafka_settings().model_copy(
                        update={"topic": f"bench.{suffix}.events", "dlq_topic": f"bench.{suffix}.dlq"}
                    )
                }
            )
            scratch = main.model_copy(
                update={
                    "kafka": main.kafka.model_copy(
                        update={"topic": f"bench.{suffix}.produce", "dlq_topic": f"bench.{suffix}.produce.dlq"}
                    )
                }
            )
            for settings in (main, scratch):
                ensure_topics(settings.kafka)
            result = _measure(plan, main, scratch, root)
            broker_pid = broker.pid()
            result["peak_rss_mb"]["broker"] = peak_rss_mb(broker_pid) if broker_pid else None
        # Both with rtap's default stream settings (the batch sizes rtap up would use) and the Spark master of B3, P.
        result["P_floor"] = _phase(_floor, plan, stack_settings(root / "floor", plan.jars_dir, stream.master, "floor"))
        live = stack_settings(root / "sustain", plan.jars_dir, stream.master, "bench")
        result["P_sustained"] = _phase(
            sustain, live, list(plan.rates), plan.step_s, plan.max_steps, plan.drain_timeout_s, plan.lead_in_s
        )
    result["freshness_vs_floor"] = floor.against_floor(
        result["P_sustained"].get("steps", []), result["P_floor"].get("steps", [])
    )
    peaks = result["peak_rss_mb"]
    peaks["live_stack"] = result["P_sustained"].get("peak_rss_mb")
    peaks["floor_job"] = result["P_floor"].get("peak_rss_mb")
    # The larger of the two stacks: the harness's broker with P's job, or rtap up's whole process tree.
    peaks["stack"] = max((peaks["broker"] or 0.0) + (peaks["job"] or 0.0), peaks["live_stack"] or 0.0)
    result.update(
        command=command,
        when=datetime.now(UTC).isoformat(timespec="seconds"),
        machine={
            "cpus": os.cpu_count() or 0,
            "python": platform.python_version(),
            "platform": platform.platform(),
            # Everything shares these cores with whatever else runs on the machine.
            "load_average_1m_before": load_before,
            "load_average_1m_after": os.getloadavg()[0],
            # ... and the host's other tenants take what the hypervisor gives them (rtap_bench.procfs).
            "steal": round(steal_share(ticks_before, cpu_jiffies()), 3),
        },
        events=plan.events,
        repeats=plan.repeats,
        smoke=plan.smoke,
        partitions=base.kafka.partitions,
        spark_master=stream.master,
        batch_records=plan.batch_records,
    )
    result["ratios"] = _ratios(result)
    return result


def _phase(measure: Any, *args: Any) -> dict[str, Any]:
    """A live phase's result, or its error (recorded with the other results; the command then fails on it)."""
    try:
        result: dict[str, Any] = measure(*args)
    except Exception as exc:  # noqa: BLE001 - recorded with the other results, then the command fails on it
        return {"error": " ".join(str(exc).split())}
    return result


def _floor(plan: BenchPlan, settings: Settings) -> dict[str, Any]:
    """The floor job at the fixed rates on a fresh broker of its own (``rtap_bench.floor``)."""
    from rtap.ingest.topics import ensure_topics
    from rtap.runtime.broker import LocalKafka

    with LocalKafka(settings):
        ensure_topics(settings.kafka)
        return floor.floor(
            settings,
            list(plan.rates),
            plan.step_s,
            (WARM_UP_RATE, WARM_UP_S),
            (LEAD_IN_RATE, plan.lead_in_s),
            plan.drain_timeout_s,
        )


def _measure(plan: BenchPlan, main: Settings, scratch: Settings, root: Path) -> dict[str, Any]:
    from rtap.generate.truth import GroundTruth
    from rtap.ingest.producer import produce_run

    payload = pre_encoded(scratch, plan.events)
    raw_produce(scratch, payload[: max(1, plan.events // 10)])  # warm-up: connections, the broker's JIT
    b1 = [_timed_cpu(raw_produce, scratch, payload) for _ in range(plan.repeats)]
    p1 = [_timed_cpu(lambda s, n: rtap_produce(s, n)[0], scratch, plan.events) for _ in range(plan.repeats)]

    fill = produce_run(main, rate=0, count=plan.events)
    if fill.failed:
        raise BrokerError(f"filling {main.kafka.topic}: {fill.failed} records failed: {fill.first_error}")
    truth = GroundTruth.from_json(fill.truth_path.read_bytes())
    expected = fill.produced

    b2 = [_timed_cpu(raw_consume, main, expected, plan.drain_timeout_s) for _ in range(plan.repeats)]
    b3, spark_peak = _spark_drains(plan, main, root)

    jobs: list[JobRun] = []
    b4: list[Sample] = []
    reconciliations: list[dict[str, Any]] = []
    for i in range(plan.repeats):
        settings = main.model_copy(update={"data_dir": root / f"job-{i}"})
        jobs.append(run_job(settings, expected, plan.drain_timeout_s))
        check, insert = _reconcile_and_insert(settings, truth)
        reconciliations.append(check)
        b4.append(insert)
        shutil.rmtree(settings.data_dir, ignore_errors=True)

    k_settings = main.model_copy(update={"data_dir": root / "kafka-engine"})
    k: dict[str, Any] = {"pinned_chdb_error": kafka_engine_error(k_settings), "error": None}
    if plan.k_python is None:
        k["error"] = f"not run (no --k-python); the pinned chDB: {k['pinned_chdb_error']}"
    else:
        before = tree_cpu_s(os.getpid())
        try:
            k_run = kafka_engine(k_settings, expected, min(plan.drain_timeout_s, K_TIMEOUT_S), plan.k_python)
        except PipelineError as exc:  # K's failure is its result; P's figures stand without it
            k["error"] = " ".join(str(exc).split())
        else:
            drain = Sample(k_run.drain.records, k_run.drain.seconds, tree_cpu_s(os.getpid()) - before)
            # K has no deduplication or lateness rule: how far its page views are from the truth's.
            truth_views = sum(row.views for row in truth.page_views_1m().values())
            k.update(
                summary([drain]), chdb=k_run.chdb_version, page_views=k_run.page_views, truth_page_views=truth_views
            )

    p = drain_summary([j.drain for j in jobs])
    p.update(
        median_job_rows_per_s=statistics.median(j.job_rows_per_s for j in jobs),
        median_startup_s=statistics.median(j.startup_s for j in jobs),
    )
    job_peaks = [j.peak_rss_mb for j in jobs if j.peak_rss_mb is not None]
    return {
        "records_in_topic": expected,
        "B1_raw_produce": summary(b1),
        "P1_rtap_produce": summary(p1),
        "B2_raw_consume": summary(b2),
        "B3_spark_passthrough": drain_summary(b3),
        "B4_warehouse_insert": summary(b4),
        "P_rtap_job": p,
        "K_kafka_engine": k,
        "peak_rss_mb": {
            "job": max(job_peaks) if job_peaks else None,
            "bench_spark_jvm": spark_peak,
            "bench_process": peak_rss_mb(os.getpid()),
        },
        "reconciliation": {"ok": all(r["ok"] for r in reconciliations), "runs": reconciliations},
        "P_spark_progress": _progress_breakdown(jobs),
    }


def _spark_drains(plan: BenchPlan, settings: Settings, root: Path) -> tuple[list[Drain], float | None]:
    """B3 repeats in one SparkSession (built exactly as the job builds its own); the JVM's peak RSS."""
    from rtap.stream.spark import build_session, shutdown_jvm

    spark = build_session(settings)
    try:
        samples = [_timed_drain(spark_drain, spark, settings, root / f"b3-{i}") for i in range(plan.repeats)]
        jvms = [pid for pid in children(os.getpid()) if _is_java(pid)]
        peak = max((p for pid in jvms if (p := tree_peak_rss_mb(pid)) is not None), default=None)
    finally:
        shutdown_jvm(spark)  # not only stopped: an idle JVM would hold its memory through the live phases
    return samples, peak


def _is_java(pid: int) -> bool:
    try:
        return b"org.apache.spark.deploy.SparkSubmit" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _reconcile_and_insert(settings: Settings, truth: Any) -> tuple[dict[str, Any], Sample]:
    """Reconcile one P run's warehouse with the truth, then time B4 with that run's own event rows."""
    from rtap.ops.reconcile import observe, reconcile
    from rtap.warehouse import create_client

    with create_client(settings) as client:
        report = reconcile(truth, observe(client, topic=settings.kafka.topic))
        rows = client.query_arrow("SELECT * FROM {db}.events")
        insert = _timed_cpu(warehouse_insert, client, rows, f"bench_events_{uuid.uuid4().hex[:8]}")
    check = {
        "ok": report.ok,
        "checks": {c.name: {"expected": c.expected, "observed": c.observed, "ok": c.ok} for c in report.checks},
        "differences": [d for c in report.failed for d in c.differences],
    }
    return check, insert


def _progress_breakdown(jobs: list[JobRun]) -> dict[str, float]:
    """Median over P's runs of each phase's summed milliseconds (see ``drain.time_split``)."""
    keys = sorted({k for j in jobs for k in j.time_split})
    return {k: statistics.median(j.time_split.get(k, 0) for j in jobs) for k in keys}


def _ratios(result: dict[str, Any]) -> dict[str, float | None]:
    sustained = (result.get("P_sustained") or {}).get("sustainable_records_per_s")
    b3, k = median_rate(result, "B3_spark_passthrough"), median_rate(result, "K_kafka_engine")

    def ratio(a: str, b: str) -> float | None:
        top, bottom = median_rate(result, a), median_rate(result, b)
        return top / bottom if top is not None and bottom else None

    return {
        "P_over_B3": ratio("P_rtap_job", "B3_spark_passthrough"),
        "P_over_K": ratio("P_rtap_job", "K_kafka_engine"),
        "P1_over_B1": ratio("P1_rtap_produce", "B1_raw_produce"),
        "P_over_B4": ratio("P_rtap_job", "B4_warehouse_insert"),
        "P_sustained_over_B3": sustained / b3 if sustained and b3 else None,
        "P_sustained_over_K": sustained / k if sustained and k else None,
    }
