"""``rtap status``: one screen on the local stack; exit 0 only when every part is healthy."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from rtap.errors import RtapError
from rtap.runtime.ports import http_url
from rtap.runtime.stack.checks import Check
from rtap.runtime.stack.profiles import brokers_check
from rtap.runtime.stack.up import UP_PID_FILE
from rtap.settings import Settings
from rtap.stream.restarts import JOB_STATE_FILE, JobState

LAST_BATCHES = """
SELECT
    max(finished_at) AS last_batch,
    argMax(kafka_lag, finished_at) AS lag,
    argMax(freshness_ms, finished_at) AS freshness_ms,
    sumIf(input_rows, finished_at > now64(3) - INTERVAL 10 SECOND) / 10 AS events_per_s,
    count() AS batches,
    sum(valid) AS events
FROM {db}.pipeline_batches FINAL
"""


def _up_process(settings: Settings) -> int | None:
    try:
        pid = int((settings.paths.run / UP_PID_FILE).read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _clock(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%H:%M:%S UTC")


def restarts_check(state: JobState, now: datetime) -> Check:
    """The running job's restarts from its checkpoint (a failed batch, a dead Spark JVM), from its state file.

    A restart the job recovered from is not a failure of the stack: the stream job's own check says whether
    batches commit, and ``RTAP_STREAM_MAX_CONSECUTIVE_FAILURES`` failures in a row end the job (and its process).
    """
    since = f"since the job started at {_clock(state.started_at)}"
    if not state.restarts or state.last_restart_at is None:
        return Check("restarts", True, f"none {since}")
    ago = (now - datetime.fromisoformat(state.last_restart_at)).total_seconds()
    times = "1 restart" if state.restarts == 1 else f"{state.restarts:,} restarts"
    last = f"last at {_clock(state.last_restart_at)} ({_age(ago)} ago): {state.last_error or 'no cause recorded'}"
    return Check("restarts", True, f"{times} {since}; {last}")


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"


def collector_check(settings: Settings) -> Check:
    """The collector ``rtap up`` runs: its ``/healthz``, which is its Kafka sink's health."""
    import httpx

    collect = settings.collect
    host = "127.0.0.1" if collect.host in ("0.0.0.0", "") else collect.host
    url = http_url(host, collect.port)
    try:
        answer = httpx.get(f"{url}/healthz", timeout=2.0)
        detail = str(answer.json().get("detail", answer.text))
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        return Check("collector", False, f"{url} does not answer: {exc or type(exc).__name__}")
    return Check("collector", answer.status_code == 200, f"{url}: {detail}")


def _job_state(settings: Settings) -> JobState | None:
    """The state file of the job running in this data directory; None if none runs (or it left no file)."""
    state = JobState.read(settings.paths.run / JOB_STATE_FILE)
    return state if state is not None and state.running() else None


def collect(settings: Settings) -> list[Check]:
    """Every check, each independent of the others' failures."""
    checks = _collect(settings)
    if (state := _job_state(settings)) is not None:
        checks.append(restarts_check(state, datetime.now(UTC)))
    return checks


def _collect(settings: Settings) -> list[Check]:
    from rtap.warehouse import create_client

    checks: list[Check] = [brokers_check(settings)]
    pid = _up_process(settings)
    checks.append(Check("rtap up", pid is not None, f"pid {pid}" if pid else "not running"))
    if pid is not None:
        checks.append(collector_check(settings))
    try:
        with create_client(settings, readonly=True) as client:
            row = client.query_rows(LAST_BATCHES)[0]
    except RtapError as exc:
        checks.append(Check("warehouse", False, str(exc)))
        return checks
    last, lag, freshness_ms, rate, batches, events = row
    checks.append(Check("warehouse", True, f"{events:,} events in {batches:,} batches"))
    if not batches:
        checks.append(Check("stream job", False, "no batch committed yet"))
        return checks
    last = last if last.tzinfo else last.replace(tzinfo=UTC)
    age = (datetime.now(UTC) - last).total_seconds()
    # A job with work to do must commit within RTAP_ALERT_STALL_AFTER_S, the threshold of the stall alert too.
    stalled = lag > 0 and age > settings.alerts.stall_after_s
    checks.append(Check("stream job", not stalled, f"last batch {age:.1f} s ago, lag {lag:,} records"))
    fresh = "n/a" if freshness_ms is None else f"{freshness_ms / 1000:.2f} s"
    checks.append(Check("throughput", True, f"{rate:,.0f} events/s over 10 s, freshness at last batch {fresh}"))
    return checks
