"""A real Prometheus (Debian's /usr/bin/prometheus) scraping a real `rtap up`: the metrics arrive and agree with
the warehouse, an idle job raises no alert, and a frozen job with records waiting raises "no batch committed"
within its window.

Prometheus gets the repository's scrape configuration for local mode (deploy/prometheus/local.yml) with the
test's ports and one-second intervals, and the alert rules `rtap metrics rules` generates for a 10 s stall
window. rtap runs with RTAP_METRICS_PASSWORD and RTAP_STREAM_UI_SECRET, as in compose, and Prometheus scrapes
rtap's endpoint and the collector's with compose's basic_auth, and Spark's with compose's bearer token, made by
`rtap stream --ui-token` (deploy/prometheus/prometheus.yml), each from a file. It runs on loopback, under
`timeout`, and is stopped at the end of the test.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.caddy import running_caddy
from tests.support.paths import REPO_ROOT, free_port
from tests.support.waiting import settled

pytestmark = pytest.mark.timeout(900)

PROMETHEUS = Path("/usr/bin/prometheus")
LOCAL_CONFIG = REPO_ROOT / "deploy" / "prometheus" / "local.yml"
COMPOSE_CONFIG = REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml"
SPARK_UI_PROXY = REPO_ROOT / "deploy" / "compose" / "spark-ui" / "Caddyfile"
STALL_AFTER_S = 10
# Prometheus runs no longer than this even if the test process is killed and cannot stop it.
PROMETHEUS_LIFETIME_S = 900


def rtap(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "rtap", *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def produce(env: dict[str, str], *args: str) -> int:
    """Run `rtap produce`; the records it delivered (more than the events: the generator sends duplicates)."""
    report = rtap(["produce", *args], env).stdout
    match = re.search(r": ([\d,]+) records", report)
    assert match, report
    return int(match.group(1).replace(",", ""))


def scrape_config(
    metrics_port: int, spark_ui_port: int, collector_port: int, password_file: Path, token_file: Path
) -> dict[str, Any]:
    """local.yml with this test's ports and short intervals (the rest, rule files and relabelling, as is), and
    compose's basic_auth for rtap's jobs with ``password_file``, its bearer token for Spark's with ``token_file``."""
    config: dict[str, Any] = yaml.safe_load(LOCAL_CONFIG.read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    compose_jobs = {job["job_name"]: job for job in yaml.safe_load(COMPOSE_CONFIG.read_text())["scrape_configs"]}
    basic_auth = {**compose_jobs["rtap-stream"]["basic_auth"], "password_file": str(password_file)}
    bearer = {**compose_jobs["spark-driver"]["authorization"], "credentials_file": str(token_file)}
    ports = {"rtap": metrics_port, "spark-driver": spark_ui_port, "rtap-collector": collector_port}
    for job in config["scrape_configs"]:
        (static,) = job["static_configs"]
        (target,) = static["targets"]
        static["targets"] = [f"{target.rsplit(':', 1)[0]}:{ports[job['job_name']]}"]
        if job["job_name"] == "spark-driver":
            job["authorization"] = bearer
        else:
            job["basic_auth"] = basic_auth
    return config


class Prometheus:
    """The HTTP API of the Prometheus under test."""

    def __init__(self, port: int) -> None:
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=10)

    def query(self, promql: str) -> list[dict[str, Any]]:
        body = self.api.get("/query", params={"query": promql}).json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def value(self, promql: str) -> float | None:
        result = self.query(promql)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def alert(self, name: str) -> dict[str, Any] | None:
        """The active (pending or firing) alert of that name, if any."""
        alerts = [a for a in self.api.get("/alerts").json()["data"]["alerts"] if a["labels"]["alertname"] == name]
        assert len(alerts) <= 1, alerts
        return alerts[0] if alerts else None


def wait_for(what: str, probe: Callable[[], object], timeout_s: float, every_s: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if answer := probe():
            return answer
        time.sleep(every_s)
    raise AssertionError(f"{what}: not within {timeout_s:.0f} s")


@pytest.fixture
def prometheus_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    return directory


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    kafka_port, controller_port = free_port(), free_port()
    spark_conf = tmp_path / "spark-conf"
    spark_conf.mkdir()
    # Spark's UI (and its metrics servlet) on a port of this test: 4040 may belong to another Spark.
    (spark_conf / "spark-defaults.conf").write_text(f"spark.ui.port {free_port()}\n")
    return {
        **os.environ,
        "RTAP_DATA_DIR": str(tmp_path / "data"),
        "RTAP_JARS_DIR": str(REPO_ROOT / "jars" / "lib"),
        "RTAP_KAFKA_PORT": str(kafka_port),
        "RTAP_KAFKA_CONTROLLER_PORT": str(controller_port),
        "RTAP_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_port}",
        "RTAP_DASHBOARD_PORT": str(free_port()),
        "RTAP_COLLECT_PORT": str(free_port()),
        "RTAP_METRICS_PORT": str(free_port()),
        "RTAP_METRICS_PRODUCER_PORT": "0",
        "RTAP_METRICS_PASSWORD": secrets.token_hex(16),
        "RTAP_STREAM_UI_SECRET": secrets.token_hex(24),
        "RTAP_STREAM_MASTER": "local[2]",
        "RTAP_ALERT_STALL_AFTER_S": str(STALL_AFTER_S),
        "SPARK_CONF_DIR": str(spark_conf),
    }


def spark_ui_port(env: dict[str, str]) -> int:
    return int((Path(env["SPARK_CONF_DIR"]) / "spark-defaults.conf").read_text().split()[1])


@pytest.fixture
def prometheus(env: dict[str, str], prometheus_dir: Path) -> Iterator[Prometheus]:
    if not PROMETHEUS.exists():
        pytest.fail(f"{PROMETHEUS} is missing: run `make system-deps` (Debian's prometheus package)")
    spark_ui = spark_ui_port(env)
    password_file, token_file = prometheus_dir / "rtap_metrics_password", prometheus_dir / "spark_ui_token"
    password_file.write_text(env["RTAP_METRICS_PASSWORD"])
    token_file.write_text(rtap(["stream", "--ui-token"], env).stdout.strip())
    config = scrape_config(
        int(env["RTAP_METRICS_PORT"]), spark_ui, int(env["RTAP_COLLECT_PORT"]), password_file, token_file
    )
    (prometheus_dir / "prometheus.yml").write_text(yaml.safe_dump(config))
    rtap(["metrics", "rules", "--output", str(prometheus_dir / "rules.yml")], env)  # the 10 s window
    port = free_port()
    log = (prometheus_dir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            shutil.which("timeout") or "timeout",
            str(PROMETHEUS_LIFETIME_S),
            str(PROMETHEUS),
            f"--config.file={prometheus_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={prometheus_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        server = Prometheus(port)

        def ready() -> bool:
            assert process.poll() is None, (prometheus_dir / "prometheus.log").read_text(errors="replace")[-2000:]
            try:
                return httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for("Prometheus ready", ready, 60)
        yield server
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
        log.close()


def scraped(prometheus: Prometheus, job: str) -> bool:
    return prometheus.value(f'up{{job="{job}"}}') == 1


def spark_jvm(up: subprocess.Popen[bytes]) -> int:
    """The pid of the Spark driver's JVM, a child of the `rtap up` process."""
    children = subprocess.run(
        ["pgrep", "-P", str(up.pid), "-f", "org.apache.spark.deploy.SparkSubmit"], capture_output=True, text=True
    ).stdout.split()
    assert len(children) == 1, children
    return int(children[0])


def test_prometheus_sees_what_the_warehouse_holds_and_alerts_on_a_stalled_job(
    env: dict[str, str], prometheus: Prometheus, prometheus_dir: Path, tmp_path: Path
) -> None:
    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen(
        [sys.executable, "-m", "rtap", "up", "--no-generator"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    frozen: int | None = None
    try:
        # rtap's endpoint serves before the collector (a process of its own) is listening: wait for both.
        for job in ("rtap", "rtap-collector"):
            wait_for(f"{job} scraped", functools.partial(scraped, prometheus, job), 300)
        for port in (env["RTAP_METRICS_PORT"], env["RTAP_COLLECT_PORT"]):  # only Prometheus, with the password
            assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 401
        records = produce(env, "--rate", "1000", "--count", "4000", "--seed", "18")

        # Drained: every produced record read, and Prometheus has the final figures.
        wait_for("the job drains", lambda: prometheus.value("rtap_stream_records_read_total") == records, 300)
        sql = rtap(
            [
                "sql",
                "SELECT (SELECT count() FROM rtap.events FINAL), (SELECT count() FROM rtap.dead_letters), "
                "(SELECT count() FROM rtap.late_events FINAL), count(), sum(input_rows), sum(duplicates), "
                "argMax(kafka_lag, finished_at), toUnixTimestamp64Milli(max(finished_at)) "
                "FROM rtap.pipeline_batches FINAL FORMAT TSV",
            ],
            env,
        )
        events, dead, late, batches, read, duplicates, lag, last_ms = (int(v) for v in sql.stdout.split())
        figures = {
            "rtap_stream_records_accepted_total": events,
            "sum(rtap_stream_dead_letters_total)": dead,
            "rtap_stream_records_late_total": late,
            "rtap_stream_batches_total": batches,
            "rtap_stream_records_read_total": read,
            "rtap_stream_records_duplicate_total": duplicates,
            "sum(rtap_stream_kafka_lag_records)": lag,
            "rtap_stream_event_freshness_seconds_count": events,
            "rtap_stream_batch_duration_seconds_count": batches,
            "rtap_stream_last_batch_timestamp_seconds * 1000": last_ms,
        }
        # A few more scrapes (1 s apart, each allowed 1 s) until every series is at its final value.
        seen = settled(
            lambda: {promql: prometheus.value(promql) for promql in figures},
            lambda now: now == pytest.approx(figures, abs=1e-3),
            30,
            every_s=1,
        )
        print("\nPrometheus | warehouse:", *(f"{q} = {seen[q]!r} | {figures[q]}" for q in figures), sep="\n  ")
        assert seen == pytest.approx(figures, abs=1e-3)
        assert events + dead + late + duplicates == records
        assert prometheus.value("sum(rtap_kafka_log_end_offset)") == records
        assert prometheus.value('sum(rtap_stream_dead_letters_total{reason="other"})') == 0
        # Spark's own metrics arrive too, without its streaming-query gauges (rtap's are the ones above).
        # Scraped with the token (without it, refused); waited for: one scrape slower than its 1 s timeout reads 0.
        wait_for("spark-driver scraped", functools.partial(scraped, prometheus, "spark-driver"), 30)
        ui = f"127.0.0.1:{spark_ui_port(env)}"
        assert httpx.get(f"http://{ui}/api/v1/applications", timeout=5).status_code == 403
        # compose's spark-ui proxy (a real Caddy, deploy/compose/spark-ui/Caddyfile) presents it for a browser
        proxy_port, token = free_port(), (prometheus_dir / "spark_ui_token").read_text()
        replacements = {"stream:4040": ui, "\n:4040 {": f"\n:{proxy_port} {{"}
        with running_caddy(
            SPARK_UI_PROXY, replacements, {"SPARK_UI_TOKEN": token}, tmp_path / "caddy", ready_port=proxy_port
        ):
            through = httpx.get(f"http://127.0.0.1:{proxy_port}/api/v1/applications", timeout=10)
            rebound = httpx.get(f"http://127.0.0.1:{proxy_port}/api/v1/applications", headers={"Host": "evil.example"})
            assert rebound.status_code == 421  # DNS rebinding: only this machine's loopback names are answered
        assert through.status_code == 200, through.text
        assert through.json()[0]["name"] == "rtap-stream"
        assert prometheus.query('{__name__=~"metrics_rtap_driver_jvm_heap_used_.*"}')
        assert not prometheus.query('{__name__=~"metrics_rtap_driver_spark_streaming_.*"}')
        # The collector's own endpoint is scraped, and its alert rules can see it.
        wait_for("rtap-collector scraped", functools.partial(scraped, prometheus, "rtap-collector"), 30)

        # Idle (nothing to read) for longer than the stall window: no batch, and rightly no alert.
        time.sleep(STALL_AFTER_S + 5)
        assert prometheus.alert("RtapStreamNoBatchCommitted") is None

        # The job's engine freezes (SIGSTOP of Spark's JVM) while records keep arriving: no batch can commit.
        frozen = spark_jvm(up)
        os.kill(frozen, signal.SIGSTOP)
        stopped_at = time.monotonic()
        waiting = produce(env, "--rate", "200", "--count", "400", "--seed", "19")
        alert = wait_for(
            "RtapStreamNoBatchCommitted", lambda: prometheus.alert("RtapStreamNoBatchCommitted"), STALL_AFTER_S + 60
        )
        age = float(alert["value"])  # the alert's value: seconds since the last commit
        print(
            f"RtapStreamNoBatchCommitted {alert['state']} {time.monotonic() - stopped_at:.1f} s after the job froze, "
            f"{age:.1f} s after its last commit, {alert['labels']}"
        )
        assert alert["state"] in {"pending", "firing"}
        assert age > STALL_AFTER_S
        backlog = "sum(rtap_kafka_log_end_offset) - sum(rtap_stream_committed_offset)"
        wait_for("the backlog seen", lambda: prometheus.value(backlog) == waiting, 10)  # the next scrape
        assert prometheus.value("rtap_stream_records_read_total") == records  # nothing committed meanwhile

        # Thawed, the job commits the waiting records and the alert resolves.
        os.kill(frozen, signal.SIGCONT)
        frozen = None
        caught_up = records + waiting
        wait_for("the job catches up", lambda: prometheus.value("rtap_stream_records_read_total") == caught_up, 300)
        wait_for("the alert resolves", lambda: prometheus.alert("RtapStreamNoBatchCommitted") is None, 60)
    finally:
        if frozen is not None:
            os.kill(frozen, signal.SIGCONT)
        up.send_signal(signal.SIGTERM)
        code = up.wait(timeout=180)
        log.close()
    assert code == 0, (tmp_path / "up.log").read_text(errors="replace")[-3000:]
