"""The stack a user runs, as the job the live phase and the soak measure: ``rtap up --no-generator``.

Not ``rtap stream`` beside the harness's broker: ``rtap up`` runs the job in one process with its own broker (a
child), the warehouse's read channel, the dashboard, the metrics endpoint and the status line, and a user's
freshness comes from that process (issue 22). So the live phase starts exactly that command, on free loopback
ports in a private data directory, with rtap's default stream settings (only the Spark master is the caller's:
the harness keeps it equal to B3's). Spark's event log is on, as for every job the harness runs, for the
per-phase times; the job's line per micro-batch goes to ``rtap up``'s own log, ``logs/rtap-up.log``.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rtap.errors import BrokerError, PipelineError
from rtap.kafka_admin import list_topics
from rtap.runtime.ports import free_ports
from rtap.runtime.stack.console import LOG_FILE
from rtap.settings import DashboardSettings, KafkaSettings, MetricsSettings, Settings, StreamSettings
from rtap_bench.drain import spark_process, tail

CONSOLE = "rtap-up.console"  # what rtap up prints for its operator
READY_POLL_S = 0.5


def stack_settings(data_dir: Path, jars_dir: Path, master: str | None, name: str) -> Settings:
    """Settings of a private ``rtap up``: free ports for its broker, controller and dashboard, unique topics;
    ``master``: Spark's (None: rtap's default)."""
    port, controller_port, dashboard_port = free_ports(3)
    suffix = uuid.uuid4().hex[:8]
    return Settings(
        data_dir=data_dir,
        jars_dir=jars_dir,
        kafka=KafkaSettings(
            bootstrap_servers=f"127.0.0.1:{port}",
            controller_port=controller_port,
            topic=f"{name}.{suffix}.events",
            dlq_topic=f"{name}.{suffix}.dlq",
        ),
        stream=StreamSettings() if master is None else StreamSettings(master=master),
        metrics=MetricsSettings(port=0),  # a stack running beside the bench has the default one
        dashboard=DashboardSettings(port=dashboard_port),
    )


def log_path(settings: Settings) -> Path:
    """``rtap up``'s log: Spark's and Kafka's output and the job's line per micro-batch."""
    return settings.paths.logs / LOG_FILE


@contextmanager
def running_stack(settings: Settings, timeout_s: float) -> Iterator[subprocess.Popen[bytes]]:
    """``rtap up --no-generator`` on ``settings``, yielded once its topics exist; stopped (SIGTERM) on exit."""
    command = [sys.executable, "-m", "rtap", "up", "--no-generator", "--data-dir", str(settings.data_dir)]
    # What child_environment does not carry: the broker's controller port and the dashboard's address.
    env = {
        "RTAP_KAFKA_CONTROLLER_PORT": str(settings.kafka.controller_port),
        "RTAP_DASHBOARD_HOST": settings.dashboard.host,
        "RTAP_DASHBOARD_PORT": str(settings.dashboard.port),
    }
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with spark_process(command, settings, settings.data_dir / CONSOLE, env) as process:
        _wait_for_topic(settings, process, timeout_s)
        yield process


def _wait_for_topic(settings: Settings, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Until ``rtap up`` has created the input topic (a sender before that would auto-create it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise PipelineError(
                f"rtap up exited with {process.returncode}: {tail(settings.data_dir / CONSOLE)} | "
                f"{tail(log_path(settings))}"
            )
        try:
            if settings.kafka.topic in list_topics(settings.kafka, timeout_s=5):
                return
        except BrokerError:
            pass  # the broker is still starting
        if time.monotonic() > deadline:
            raise PipelineError(f"rtap up did not create {settings.kafka.topic} in {timeout_s:.0f} s")
        time.sleep(READY_POLL_S)
