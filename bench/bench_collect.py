"""The collector under an outside HTTP load generator (wrk, Debian's `wrk`), with every accepted event counted in Kafka.

    .venv/bin/python -m bench.bench_collect [--seconds 15] [--connections 32] [--repeats 2] [--workers 1,2]

Starts a private LocalKafka and `rtap collect` as `rtap up` runs it (its own process, uvicorn with uvloop and
httptools, acks=all and idempotent), rate limits out of the way, and `RTAP_COLLECT_BENCH_NOOP` on. Then, in one run
and alternating, wrk (1 thread, closed loop) drives for ``--seconds`` each, at each of ``--connections``:

* E1 ``POST /v1/event``: one event per request (text/plain, as sendBeacon sends it);
* B25 ``POST /v1/batch``: 25 events per request;
* N1, N25: the same requests to ``/v1/noop/event`` and ``/v1/noop/batch``, every step of the same server but
  writing to Kafka: the server's own ceiling, and the ratio E1/N1, B25/N25.

All four again with each further count of ``--workers`` (``RTAP_COLLECT_WORKERS``, rtap.collect.workers), named
``E1 x2`` and so on: what a second process on the one socket adds, against one in the same run (``B25 x2/B25``).

A closed loop's rate is its connections over the latency (Little's law), and a request here waits for Kafka's
acknowledgement after the producer's linger (``RTAP_COLLECT_LINGER_MS``): a closed loop cannot ask for more than
its connections over that wait, however fast the server. So each measurement runs at several connection counts,
and its **operating point** is the highest rate whose p99 latency met the target (25 ms); where none did, the
lowest p99. The targets are read at the operating points, and E1/N1 and B25/N25 at the same connections.

Every event has its own id (wrk's Lua script numbers them, after a prefix of its run). After each Kafka
measurement the topic's log-end offsets must have grown by the events of the requests answered 200 (wrk counts the
non-2xx answers), plus at most those of the requests in flight when wrk stopped (one per connection; wrk does not
wait for their answers): nothing answered 200 is missing. Once every measurement has run, the stream job
(``rtap stream``, rtap's default settings) reads everything the collector wrote, and every event is checked in the
warehouse: each run's events in ``events`` by its prefix, within the same bounds, none twice, and every record of
the topic an event (no dead letter, late event or duplicate). The broker, the collector and wrk share this
machine's cores; the job runs after them, alone. Results: bench/results/collect.json and collect.md (``--name``:
another name; ``--only B25``: that measurement and its no-op companion only, e.g. for a quicker look at
``--workers``).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import secrets
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, TopicPartition
from rtap_bench.drain import running_job, wait_committed
from rtap_bench.procfs import STEAL_QUIET, cpu_jiffies, steal_share, tree_cpu_s, tree_peak_rss_mb, tree_rss_mb
from rtap_bench.produce import private_broker

from rtap.ingest.topics import ensure_topics
from rtap.runtime.stack.collector import CollectorDaemon
from rtap.settings import DEMO_WRITE_KEY, CollectorSettings, MetricsSettings, Settings
from rtap.warehouse import create_client

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results"
# (name, path, events per request, whether it writes to Kafka)
MEASUREMENTS = (
    ("E1", "/v1/event", 1, True),
    ("N1", "/v1/noop/event", 1, False),
    ("B25", "/v1/batch", 25, True),
    ("N25", "/v1/noop/batch", 25, False),
)
# The median over the repeats of each of these, per measurement.
SUMMARY_FIELDS = (
    "requests_per_s",
    "events_per_s",
    "p99_ms",
    "collector_cpu_us_per_request",
    "broker_cpu_us_per_request",
    "wrk_cpu_us_per_request",
)
TARGETS = {"E1": ("requests_per_s", 6_000), "B25": ("events_per_s", 60_000)}
COMPANION = {"E1": "N1", "B25": "N25"}  # each Kafka measurement's no-op route
P99_TARGET_MS = 25.0

# Each request's body is made by wrk's Lua (its own event ids); done() prints wrk's own summary as one JSON line.
WRK_SCRIPT = """
local events_per_request = tonumber(os.getenv("RTAP_EVENTS"))
local prefix = os.getenv("RTAP_PREFIX")
local key = os.getenv("RTAP_KEY")
local n = 0
local function event()
  n = n + 1
  return string.format(
    '{"event_id":"%s-0000-4000-8000-%012d","type":"page_view","created_at":"2026-12-02T08:00:00.000Z",' ..
    '"anonymous_id":"anon-%d","session_id":"sess-%d","url":"http://127.0.0.1/shop/p%d","title":"Shop",' ..
    '"device":"desktop"}', prefix, n, n % 5000, n % 2000, n % 200)
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "text/plain;charset=UTF-8"
request = function()
  local body
  if events_per_request == 1 then
    body = string.sub(event(), 1, -2) .. ',"write_key":"' .. key .. '","sent_at":"2026-12-02T08:00:01.000Z"}'
  else
    local events = {}
    for i = 1, events_per_request do events[i] = event() end
    body = '{"write_key":"' .. key .. '","sent_at":"2026-12-02T08:00:01.000Z","events":[' ..
      table.concat(events, ",") .. ']}'
  end
  return wrk.format(nil, nil, nil, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"non_2xx":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,' ..
    '"p50_us":%d,"p99_us":%d,"max_us":%d}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def log_end(settings: Settings) -> int:
    """The sum of the browser topic's log-end offsets: records ever written to it."""
    kafka = settings.kafka
    consumer = Consumer({**kafka.client_config(), "group.id": "rtap-bench-collect", "enable.auto.commit": False})
    try:
        topic = consumer.list_topics(kafka.browser_topic, timeout=10).topics[kafka.browser_topic]
        return sum(
            consumer.get_watermark_offsets(TopicPartition(kafka.browser_topic, p), timeout=10)[1]
            for p in topic.partitions
        )
    finally:
        consumer.close()


def wrk(url: str, script: Path, seconds: float, connections: int, events: int) -> dict[str, Any]:
    prefix = secrets.token_hex(4)  # the first eight hex digits of each event id of this run
    env = {**os.environ, "RTAP_EVENTS": str(events), "RTAP_PREFIX": prefix, "RTAP_KEY": DEMO_WRITE_KEY}
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(script), url]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 60, check=True)
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    result: dict[str, Any] = orjson.loads(line.removeprefix("RESULT "))
    result.update(command=shlex.join(command), prefix=prefix)
    return result


def _children_cpu_s() -> float:
    """CPU seconds of this process's reaped children (wrk, once its run has returned)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(
    broker: Any,
    collector: CollectorDaemon,
    settings: Settings,
    script: Path,
    name: str,
    path: str,
    events: int,
    kafka: bool,
    connections: int,
    seconds_each: float,
) -> dict[str, Any]:
    pid, broker_pid = collector.pid(), broker.pid()
    assert pid is not None, "the collector is not running"
    assert broker_pid is not None, "the broker is not running"
    before = log_end(settings)
    cpu_before, broker_before, wrk_before = tree_cpu_s(pid), tree_cpu_s(broker_pid), _children_cpu_s()
    result = wrk(collector.url + path, script, seconds_each, connections, events)
    cpu_s = tree_cpu_s(pid) - cpu_before
    broker_s, wrk_s = tree_cpu_s(broker_pid) - broker_before, _children_cpu_s() - wrk_before
    written = log_end(settings) - before
    accepted = result["requests"] - result["non_2xx"]
    seconds = result["duration_us"] / 1e6
    row = {
        "measurement": name,
        "connections": connections,
        "path": path,
        "events_per_request": events,
        "requests_per_s": accepted / seconds,
        "events_per_s": accepted * events / seconds,
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "max_ms": result["max_us"] / 1000,
        # The collector's own CPU per answered request: what it costs whatever else shares the cores.
        "collector_cpu_us_per_request": cpu_s * 1e6 / max(result["requests"], 1),
        # Where the rest of the two cores went: the broker's JVM and wrk itself (all three share the machine).
        "broker_cpu_us_per_request": broker_s * 1e6 / max(result["requests"], 1),
        "wrk_cpu_us_per_request": wrk_s * 1e6 / max(result["requests"], 1),
        "collector_peak_rss_mb": tree_peak_rss_mb(pid),
        "accepted_requests": accepted,
        "refused_or_failed": result["non_2xx"]
        + result["connect"]
        + result["read"]
        + result["write"]
        + result["timeout"],
        "events_in_kafka": written,
        "prefix": result["prefix"],
        "wrk": result,
    }
    # Every event answered 200 is in Kafka. Beyond them at most the requests in flight when wrk stopped (it does
    # not wait for their answers), one per connection, and those refused or failed; the no-op routes write none.
    row["events_answered_200"] = accepted * events if kafka else 0
    row["events_at_most"] = (accepted + connections + row["refused_or_failed"]) * events if kafka else 0
    assert written >= row["events_answered_200"], f"{name}: {accepted * events} events answered 200, {written} in Kafka"
    assert written <= row["events_at_most"], f"{name}: {written} records for {row['events_answered_200']} events"
    return row


def outage(broker: Any, collector: CollectorDaemon, settings: Settings, script: Path, args: Any) -> dict[str, Any]:
    """B25 load for ``--outage-seconds`` with the broker stopped in its middle third: the collector's resident
    memory sampled twice a second (it must not grow with the requests it refuses), and the answers."""
    pid = collector.pid()
    assert pid is not None
    third = args.outage_seconds / 3
    before = log_end(settings)
    prefix = secrets.token_hex(4)
    env = {**os.environ, "RTAP_EVENTS": "25", "RTAP_PREFIX": prefix, "RTAP_KEY": DEMO_WRITE_KEY}
    command = [
        "wrk",
        "-t1",
        f"-c{max(args.connections)}",
        f"-d{args.outage_seconds:g}s",
        "--timeout",
        "15s",
        "-s",
        str(script),
    ]
    load = subprocess.Popen([*command, collector.url + "/v1/batch"], env=env, stdout=subprocess.PIPE, text=True)
    samples: list[tuple[float, float, str]] = []
    started = time.monotonic()
    phase = "up"
    while load.poll() is None:
        elapsed = time.monotonic() - started
        if phase == "up" and elapsed >= third:
            broker.stop()
            phase = "down"
        elif phase == "down" and elapsed >= 2 * third:
            broker.start()
            phase = "back"
        rss = tree_rss_mb(pid)  # the supervisor and its workers, when there are several
        assert rss is not None, "the collector exited during the outage"
        samples.append((round(elapsed, 1), rss, phase))
        time.sleep(0.5)
    if phase != "back":
        broker.start()
    line = next(line for line in load.communicate()[0].splitlines() if line.startswith("RESULT "))
    result = orjson.loads(line.removeprefix("RESULT "))
    accepted_events = (result["requests"] - result["non_2xx"]) * 25
    written = log_end(settings) - before
    assert written >= accepted_events, f"outage: {accepted_events} events answered 200, {written} in Kafka"
    up = [rss for _, rss, phase in samples if phase == "up"]
    down = [rss for _, rss, phase in samples if phase == "down"]
    return {
        "seconds": args.outage_seconds,
        "broker_down_s": round(third, 1),
        "requests": result["requests"],
        "non_2xx": result["non_2xx"],
        "accepted_events": accepted_events,
        "events_in_kafka": written,
        "prefix": prefix,
        "events_answered_200": accepted_events,
        # Any request may have landed: a 503 can come after Kafka took some of its records, and wrk does not wait
        # for the requests in flight when it stops.
        "events_at_most": (result["requests"] + max(args.connections)) * 25,
        "rss_mb_before_outage_max": max(up),
        "rss_mb_during_outage_max": max(down) if down else None,
        "rss_mb_samples": samples,
        "command": shlex.join([*command, "URL/v1/batch"]),
    }


_STORED_BY_RUN = """
SELECT substring(toString(event_id), 1, 8) AS run, count(), uniqExact(event_id)
FROM {db}.events WHERE kafka_topic = {topic:String} GROUP BY run
"""
_OTHER_FATES = """
SELECT (SELECT count() FROM {db}.dead_letters), (SELECT count() FROM {db}.late_events),
       (SELECT toUInt64(sum(duplicates)) FROM {db}.pipeline_batches FINAL)
"""


def in_warehouse(settings: Settings, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The stream job over everything the collector wrote (the broker still up, the collector stopped): every
    record of the topic one row of ``events`` and each run's events there within its bounds, none twice.

    Each run's rows are found by its id prefix (:func:`wrk`) and noted in it (``events_in_warehouse``); the
    warm-up runs count in the total only.
    """
    records = log_end(settings)
    job = settings.model_copy(update={"metrics": MetricsSettings(port=0)})  # beside a stack's endpoint
    started = time.monotonic()
    with running_job(job) as process:
        wait_committed(job, process, records, timeout_s=600 + records / 10_000)
        seconds = time.monotonic() - started
    # The job has stopped: its warehouse is this process's to open, without a reader's memory limit (a distinct
    # count of tens of millions of ids needs about a gigabyte, four times what the socket's reader may use).
    with create_client(job) as client:
        rows = client.query_rows(_STORED_BY_RUN, parameters={"topic": settings.kafka.browser_topic})
        dead, late, duplicates = (int(value) for value in client.query_rows(_OTHER_FATES)[0])
    stored = {str(run): (int(count), int(unique)) for run, count, unique in rows}
    for run in runs:
        count, unique = stored.get(run["prefix"], (0, 0))
        run["events_in_warehouse"] = count
        what = run.get("measurement", "outage")
        assert count == unique, f"{what}: {count - unique} events stored twice"
        assert run["events_answered_200"] <= count <= run["events_at_most"], (
            f"{what}: {count} events in the warehouse for {run['events_answered_200']} answered 200"
        )
    total = sum(count for count, _ in stored.values())
    assert (total, dead, late, duplicates) == (records, 0, 0, 0), (
        f"{records} records in Kafka: {total} events, {dead} dead letters, {late} late, {duplicates} duplicates"
    )
    return {"records": records, "events": total, "job_seconds": round(seconds, 1), "runs_checked": len(runs)}


def _median(rows: list[dict[str, Any]], field: str) -> float:
    return float(statistics.median(row[field] for row in rows))


def _kafka_measurements(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(","))
    unknown = [name for name in names if name not in TARGETS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"Kafka measurements from {', '.join(TARGETS)}, got {text!r}")
    return names


def _counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(sorted({int(part) for part in text.split(",")}))
    except ValueError:
        counts = ()
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError(f"comma-separated connection counts >= 1, got {text!r}")
    return counts


def by_connections(rows: list[dict[str, Any]]) -> dict[str, dict[int, dict[str, float]]]:
    """Per measurement and connection count, the median over the repeats of each of SUMMARY_FIELDS."""
    groups: dict[str, dict[int, list[dict[str, Any]]]] = {}
    for row in rows:
        groups.setdefault(row["measurement"], {}).setdefault(row["connections"], []).append(row)
    return {
        name: {c: {field: _median(same, field) for field in SUMMARY_FIELDS} for c, same in sorted(levels.items())}
        for name, levels in groups.items()
    }


def measurement_name(name: str, workers: int) -> str:
    """``B25`` with one collector process, ``B25 x2`` with two."""
    return name if workers == 1 else f"{name} x{workers}"


def same_run_ratios(
    summary: dict[str, dict[str, Any]],
    levels: dict[str, dict[int, dict[str, float]]],
    workers: tuple[int, ...],
    kafka_measurements: tuple[str, ...],
) -> dict[str, float]:
    """Each Kafka measurement against the no-op route of the same server at the same connections, and each further
    worker count's operating point against the first's."""
    ratios: dict[str, float] = {}
    for count in workers:
        for kafka in kafka_measurements:
            noop, field = COMPANION[kafka], TARGETS[kafka][0]
            k, n = measurement_name(kafka, count), measurement_name(noop, count)
            ratios[f"{k}/{n}"] = summary[k][field] / levels[n][summary[k]["connections"]][field]
            if count != workers[0]:
                first = measurement_name(kafka, workers[0])
                ratios[f"{k}/{first}"] = summary[k][field] / summary[first][field]
    return ratios


def operating_point(levels: dict[int, dict[str, float]]) -> dict[str, Any]:
    """The highest rate whose p99 met the target, with its connections; where none did, the lowest p99."""
    within = {c: row for c, row in levels.items() if row["p99_ms"] <= P99_TARGET_MS}
    if within:
        connections = max(within, key=lambda c: within[c]["requests_per_s"])
    else:
        connections = min(levels, key=lambda c: levels[c]["p99_ms"])
    return {**levels[connections], "connections": connections}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0, help="wrk's duration per measurement")
    parser.add_argument(
        "--connections",
        type=_counts,
        default=(16, 32, 48, 64),
        help="wrk's connection counts, comma-separated (default 16,32,48,64); the outage runs at the largest",
    )
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--workers",
        type=_counts,
        default=(1, 2),
        help="collector processes, comma-separated (default 1,2): every measurement at each; the outage at the first",
    )
    parser.add_argument("--outage-seconds", type=float, default=30.0, help="B25 load with the broker down a third")
    parser.add_argument(
        "--only",
        type=_kafka_measurements,
        default=("E1", "B25"),
        help="Kafka measurements to run, with their no-op companions (default E1,B25)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where <name>.json and <name>.md go")
    parser.add_argument("--name", default="collect", help="file name of the results (default collect)")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install wrk")
    load_before = os.getloadavg()[0]
    ticks_before = cpu_jiffies()
    unlimited = {
        "RTAP_COLLECT_KEY_EVENTS_PER_S": "1e9",
        "RTAP_COLLECT_KEY_BURST": "1000000000",
        "RTAP_COLLECT_IP_EVENTS_PER_S": "1e9",
        "RTAP_COLLECT_IP_BURST": "1000000000",
        "RTAP_COLLECT_BENCH_NOOP": "true",
    }
    rows: list[dict[str, Any]] = []
    stopped: dict[str, Any] = {}
    with private_broker("bench.collect", REPO_ROOT / "jars" / "lib") as (broker, base):
        settings = base.model_copy(
            update={
                "kafka": base.kafka.model_copy(update={"browser_topic": f"{base.kafka.topic}.browser"}),
                "collect": CollectorSettings(port=0, _env_file=None),  # type: ignore[call-arg]
            }
        )
        ensure_topics(settings.kafka)
        wanted = {*args.only, *(COMPANION[name] for name in args.only)}
        chosen = [measurement for measurement in MEASUREMENTS if measurement[0] in wanted]
        for workers in args.workers:
            collector = CollectorDaemon(settings, {**unlimited, "RTAP_COLLECT_WORKERS": str(workers)})
            with collector, tempfile.TemporaryDirectory() as tmp:
                script = Path(tmp) / "collect.lua"
                script.write_text(WRK_SCRIPT)
                for _name, path, events, _kafka in chosen:  # warm-up: connections, the producer's metadata
                    wrk(collector.url + path, script, 3, max(args.connections), events)
                for repeat in range(args.repeats):
                    for base_name, path, events, kafka in chosen:
                        name = measurement_name(base_name, workers)
                        for connections in args.connections:
                            row = measure(
                                broker,
                                collector,
                                settings,
                                script,
                                name,
                                path,
                                events,
                                kafka,
                                connections,
                                args.seconds,
                            )
                            row.update(repeat=repeat, workers=workers)
                            rows.append(row)
                            print(
                                f"{name:>7} c={connections:<3} {row['requests_per_s']:>9,.0f} req/s "
                                f"{row['events_per_s']:>9,.0f} events/s p99 {row['p99_ms']:.1f} ms  "
                                f"in Kafka {row['events_in_kafka']:,}",
                                flush=True,
                            )
                if not stopped:
                    stopped = {**outage(broker, collector, settings, script, args), "workers": workers}
        # The machine as the measurements had it, before the job's own load (it keeps both cores busy for minutes).
        load_after, steal = os.getloadavg()[0], round(steal_share(ticks_before, cpu_jiffies()), 3)
        print("the stream job reads every record the collector wrote ...", flush=True)
        stored = in_warehouse(settings, [*rows, stopped])
    levels = by_connections(rows)
    summary = {name: operating_point(measured) for name, measured in levels.items()}
    ratios = same_run_ratios(summary, levels, args.workers, args.only)
    report = {
        "command": "python -m bench.bench_collect " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_before": load_before},
        "load_after": load_after,
        "steal": steal,
        "seconds": args.seconds,
        "connections": list(args.connections),
        "workers": list(args.workers),
        "summary": summary,
        "by_connections": {name: {str(c): row for c, row in rows_.items()} for name, rows_ in levels.items()},
        "ratios": ratios,
        "targets": {
            measurement_name(name, workers): {"field": field, "target": target}
            for name, (field, target) in TARGETS.items()
            for workers in args.workers
            if name in args.only
        },
        "p99_target_ms": P99_TARGET_MS,
        "outage": stopped,
        "in_warehouse": stored,
        "runs": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    (args.out / f"{args.name}.md").write_text(markdown(report))
    print(markdown(report))


def _shared_note(report: dict[str, Any]) -> list[str]:
    load, cpus = max(report["machine"]["load_before"], report["load_after"]), report["machine"]["cpus"]
    steal = report.get("steal", 0.0)
    if load <= cpus and steal <= STEAL_QUIET:
        return []
    why = f"a load average of {load:.1f} on {cpus} CPUs" if load > cpus else ""
    if steal > STEAL_QUIET:
        why += (" and " if why else "") + f"{steal:.0%} of the CPU time stolen by the host's other tenants"
    return [
        f"**The machine was shared**: {why} means other work held the cores during the run, so these figures are "
        "a floor for this machine, not its measure; the ratios, taken in the same minutes, hold better.",
        "",
    ]


_DESCRIBED = {
    "E1": "E1 `POST /v1/event`, 1 event",
    "N1": "N1 `/v1/noop/event` (no Kafka)",
    "B25": "B25 `POST /v1/batch`, 25 events",
    "N25": "N25 `/v1/noop/batch` (no Kafka)",
}


def _described(name: str) -> str:
    base, _, workers = name.partition(" x")
    return _DESCRIBED[base] + (f", {workers} workers" if workers else "")


def _cpu(row: dict[str, Any]) -> str:
    """The CPU of one request, by process: the collector's, the broker's, wrk's."""
    return ", ".join(f"{row[f'{who}_cpu_us_per_request']:,.0f}" for who in ("collector", "broker", "wrk"))


def markdown(report: dict[str, Any]) -> str:
    summary, ratios = report["summary"], report["ratios"]
    machine = report["machine"]
    lines = [
        "# Collector throughput",
        "",
        f"Command: `{report['command']}` ({report['at']}, {machine['cpus']} CPUs, Python {machine['python']}, "
        f"1-min load average {machine['load_before']:.1f} before, {report['load_after']:.1f} after, "
        f"steal {report.get('steal', 0.0):.0%})",
        "",
        f"wrk (Debian's), 1 thread, closed loop at {', '.join(map(str, report['connections']))} connections, "
        f"{report['seconds']:g} s per measurement; `rtap collect` in its own process (uvicorn, uvloop, httptools), "
        "acks=all, idempotent, lz4; a local single-node KRaft broker; all three on this machine's cores. Every event "
        "has its own id; after each measurement the topic's log-end offsets had grown by at least the events of the "
        "requests answered 200 (and by at most those of the requests still in flight when wrk stopped beyond them).",
        "",
        f"Then the stream job (`rtap stream`, default settings, alone on the machine) read all "
        f"{report['in_warehouse']['records']:,} records the collector wrote in "
        f"{report['in_warehouse']['job_seconds']:,.0f} s: each is one row of `events` "
        f"({report['in_warehouse']['events']:,}; no dead letter, late event or duplicate), and each of the "
        f"{report['in_warehouse']['runs_checked']} runs (the outage's included) has at least the events answered 200 "
        "there, by its ids, none twice.",
        "",
        "A closed loop's rate is its connections over the latency, and each request waits for Kafka's "
        "acknowledgement after the producer's linger: each measurement's **operating point** is the connection "
        f"count with the highest rate whose p99 met {report['p99_target_ms']:g} ms (where none did, the lowest p99), "
        "and the targets are read there.",
        "",
        *_shared_note(report),
        "| measurement | connections | median requests/s | median events/s | p99 (ms) | CPU µs/request: collector, "
        "broker, wrk | target |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, row in summary.items():
        target = ""
        if name in report["targets"]:
            goal = report["targets"][name]
            met = row[goal["field"]] >= goal["target"] and row["p99_ms"] <= report["p99_target_ms"]
            target = (
                f"{goal['field'].replace('_per_s', '/s')} >= {goal['target']:,}, p99 <= "
                f"{report['p99_target_ms']:g} ms: {'met' if met else 'not met'}"
            )
        lines.append(
            f"| {_described(name)} | {row['connections']} | {row['requests_per_s']:,.0f} | "
            f"{row['events_per_s']:,.0f} | {row['p99_ms']:.1f} | {_cpu(row)} | {target} |"
        )
    lines += [
        "",
        "Every connection count (medians over the repeats; the operating point in bold):",
        "",
        "| measurement | connections | requests/s | events/s | p99 (ms) | CPU µs/request: collector, broker, wrk |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, levels in report["by_connections"].items():
        for connections, row in levels.items():
            bold = "**" if int(connections) == summary[name]["connections"] else ""
            lines.append(
                f"| {name} | {bold}{connections}{bold} | {row['requests_per_s']:,.0f} | {row['events_per_s']:,.0f} | "
                f"{row['p99_ms']:.1f} | {_cpu(row)} |"
            )
    if "E1" in summary:
        cpu = summary["E1"]["collector_cpu_us_per_request"]
        lines += [
            "",
            f"The collector's CPU per single-event request ({cpu:,.0f} µs, its poll thread and librdkafka's "
            f"included) puts one core's ceiling at about {1e6 / cpu:,.0f} requests/s, whatever else shares the "
            "machine.",
        ]
    lines += [
        "",
        "Ratios against the same server without Kafka at the operating point's connections, and of more workers "
        "against one at their operating points: "
        + ", ".join(f"{name} **{value:.2f}**" for name, value in ratios.items())
        + ".",
        "",
        f"Kafka stopped under load ({report['outage'].get('workers', 1)} worker, B25 for "
        f"{report['outage']['seconds']:g} s, the broker down for the middle "
        f"{report['outage']['broker_down_s']:g} s): {report['outage']['non_2xx']:,} of "
        f"{report['outage']['requests']:,} requests answered 503, {report['outage']['accepted_events']:,} events "
        f"answered 200 and {report['outage']['events_in_kafka']:,} in Kafka; the collector's resident memory peaked "
        f"at {report['outage']['rss_mb_before_outage_max']:.0f} MiB before the outage and "
        f"{report['outage']['rss_mb_during_outage_max'] or 0:.0f} MiB during it (every sample in collect.json).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
