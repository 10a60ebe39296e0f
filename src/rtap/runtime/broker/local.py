"""Run, watch and stop the local single-node Kafka broker (a ``java`` child process, no Docker).

Two ways to own it:

* detached (``rtap kafka start``): the broker outlives the command; ``rtap kafka stop`` finds it through
  the pid file under ``settings.paths.kafka``.
* attached (``with LocalKafka(settings):``, used by ``rtap up`` and the tests): the broker is a child
  that stops when the block ends or the interpreter exits (``atexit``), and, on Linux, is sent SIGTERM
  by the kernel if the parent dies without running either (``PR_SET_PDEATHSIG``). The kernel sends
  that signal when the *thread* that started the broker ends, so start it from the main thread or
  from a thread that lives as long as the broker should.

The broker runs in its own session (process group), so stopping it, or cleaning up after a failed
start, signals the whole group and leaves nothing behind.
"""

from __future__ import annotations

import atexit
import contextlib
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from rtap.errors import BrokerError, BrokerStartError, ConfigError, PortInUseError
from rtap.runtime.broker.config import (
    BROKER_MAIN,
    LOG4J2_PROPERTIES,
    BrokerFiles,
    BrokerSecurity,
    KraftNode,
    broker_command,
    format_command,
    java_command,
    kafka_classpath,
    keystore_pem,
    random_cluster_id,
    server_properties,
)
from rtap.runtime.broker.java import find_java
from rtap.runtime.ports import accepts, port_in_use
from rtap.runtime.process import Supervised, read_pid, runs_with, signal_group, spawn, wait_until
from rtap.settings import KafkaSettings, Settings

START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
FORMAT_TIMEOUT_S = 120.0
_POLL_S = 0.2
_LOG_TAIL_LINES = 4


@dataclass(frozen=True)
class BrokerStatus:
    """What ``rtap kafka status`` reports."""

    address: str
    pid: int | None
    running: bool
    topics: tuple[str, ...] = ()
    error: str | None = None


def check_local_listener(kafka: KafkaSettings) -> None:
    """Refuse, in one line, a local broker that would listen where its clients do not connect (issue #16)."""
    conflict = kafka.local_listener_conflict()
    if conflict is not None:
        raise ConfigError(conflict)


def _log_tail(log: Path, since: int = 0) -> str:
    """The lines of the broker log (from offset ``since``) that explain a failure, joined into one line:
    from just before the first error if there is one, else the last lines."""
    try:
        with log.open("rb") as handle:
            handle.seek(max(since, log.stat().st_size - 64_000))
            lines = [line.strip() for line in handle.read().decode(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    markers = ("ERROR", "FATAL", "Exception", "Error:")
    first_error = next((i for i, line in enumerate(lines) if any(m in line for m in markers)), None)
    if first_error is None:
        chosen = lines[-_LOG_TAIL_LINES:]
    else:  # the line before the first error often names the cause (the JVM prints it there)
        start = max(0, first_error - 1)
        chosen = lines[start : start + _LOG_TAIL_LINES]
    return " / ".join(line[:300] for line in chosen)


class LocalKafka(Supervised):
    """One local KRaft broker+controller configured from :class:`~rtap.settings.Settings`.

    Alone by default; with ``node`` it is one member of a multi-node quorum (see :mod:`rtap.runtime.cluster`).
    With ``security`` it also serves TLS and SASL listeners (the tests of every client over them).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        attached: bool = True,
        node: KraftNode | None = None,
        security: BrokerSecurity | None = None,
    ) -> None:
        self.settings = settings
        self.attached = attached
        self.node = node
        self.security = security
        self.files = BrokerFiles(settings.paths.kafka)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.settings.kafka.host}:{self.settings.kafka.port}"

    def kafka_settings(self) -> KafkaSettings:
        """``settings.kafka`` pointed at this broker, for clients: its listener (for a quorum member, its own
        rather than the cluster's list) and PLAINTEXT without credentials, as it serves."""
        return self.settings.kafka.plaintext_at(self.bootstrap_servers)

    # -- lifecycle ------------------------------------------------------------------------------------

    def pid(self) -> int | None:
        """The pid of this broker if it is running (started by this object or found via the pid file)."""
        if self._process is not None and self._process.poll() is None:
            return self._process.pid
        pid = read_pid(self.files.pid)
        return pid if pid is not None and self._is_mine(pid) else None

    def _is_mine(self, pid: int) -> bool:
        return runs_with(pid, BROKER_MAIN, str(self.files.server_properties))

    def start(self, timeout_s: float = START_TIMEOUT_S, *, wait: bool = True) -> int:
        """Start the broker and wait until it answers metadata requests; returns its pid.

        ``wait=False`` returns once the process runs: a quorum member cannot be ready before a majority of
        its peers run, so a cluster starts every node first and then calls :meth:`wait_ready`.
        Raises DependencyError (Java or jars), PortInUseError, or BrokerStartError (with the log tail).
        After a failure nothing started here is left running.
        """
        if self.node is None:  # a quorum member's clients use the cluster's list of every broker
            check_local_listener(self.settings.kafka)
        running = self.pid()
        if running is not None:
            raise BrokerError(f"a local Kafka broker is already running (pid {running}); `rtap kafka stop` stops it")
        java = find_java()
        classpath = kafka_classpath(self.settings)
        kafka = self.settings.kafka
        ports = [(kafka.port, "the Kafka listener"), (kafka.controller_port, "the Kafka controller")]
        if self.security is not None:
            ports += [(listener.port, f"the Kafka listener {listener.name}") for listener in self.security.listeners]
        for port, what in ports:
            if port_in_use(kafka.host, port):
                raise PortInUseError(kafka.host, port, what)

        files = self.files
        files.root.mkdir(parents=True, exist_ok=True)
        if self.security is not None:
            files.keystore.touch(mode=0o600)  # the broker's private key: readable by its owner only
            files.keystore.write_text(keystore_pem(self.security))
        files.server_properties.write_text(server_properties(self.settings, files, self.node, self.security))
        files.log4j_config.write_text(LOG4J2_PROPERTIES)
        base = java_command(java, self.settings, files, classpath)
        if not files.formatted:
            self._format(base)

        deadline = time.monotonic() + timeout_s
        process = spawn(broker_command(base, files), log=files.log, cwd=files.root, attached=self.attached)
        self._process = process
        try:
            files.pid.write_text(f"{process.pid}\n")
            if wait:
                self._wait_ready(process, deadline, timeout_s)
        except BaseException:
            signal_group(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
            files.pid.unlink(missing_ok=True)
            self._process = None
            raise
        if self.attached:
            atexit.register(self.stop)
        return process.pid

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> bool:
        """SIGTERM the broker (a clean shutdown flushes the logs), SIGKILL it if it is still there after
        ``timeout_s``. Returns whether a broker was running."""
        atexit.unregister(self.stop)
        pid = self.pid()
        if pid is None:
            self.files.pid.unlink(missing_ok=True)
            self._process = None
            return False
        signal_group(pid, signal.SIGTERM)
        if not self._wait_gone(pid, timeout_s):
            signal_group(pid, signal.SIGKILL)
            self._wait_gone(pid, 10.0)
        self.files.pid.unlink(missing_ok=True)
        self._process = None
        return True

    def status(self) -> BrokerStatus:
        """Whether a broker answers on the configured listener, its pid (if rtap started it) and its topics."""
        pid = self.pid()
        host, port = self.settings.kafka.host, self.settings.kafka.port
        if not accepts(host, port):
            return BrokerStatus(self.bootstrap_servers, pid, running=False)
        from rtap.kafka_admin import list_topics

        try:
            topics = list_topics(self.kafka_settings(), timeout_s=5.0)
        except BrokerError as error:
            return BrokerStatus(self.bootstrap_servers, pid, running=False, error=str(error))
        return BrokerStatus(self.bootstrap_servers, pid, running=True, topics=topics)

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """After ``start(wait=False)``: until this broker serves metadata with every partition led."""
        if self._process is None:
            raise BrokerError(f"the Kafka broker on {self.bootstrap_servers} was not started by this object")
        self._wait_ready(self._process, time.monotonic() + timeout_s, timeout_s)

    # -- internals ------------------------------------------------------------------------------------

    def _format(self, base: list[str]) -> None:
        """Format the storage once: a new random cluster id and the bootstrap metadata."""
        self.files.data.mkdir(parents=True, exist_ok=True)
        since = self.files.log.stat().st_size if self.files.log.exists() else 0
        with self.files.log.open("ab") as log:
            try:
                result = subprocess.run(
                    format_command(
                        base,
                        self.files,
                        random_cluster_id() if self.node is None else self.node.cluster_id,
                        () if self.security is None else self.security.scram_credentials,
                    ),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=FORMAT_TIMEOUT_S,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise BrokerStartError(f"formatting the Kafka storage in {self.files.data} timed out") from exc
        if result.returncode != 0:
            raise BrokerStartError(
                f"formatting the Kafka storage in {self.files.data} failed (exit {result.returncode})",
                _log_tail(self.files.log, since),
            )

    def _wait_ready(self, process: subprocess.Popen[bytes], deadline: float, timeout_s: float) -> None:
        """Until the broker serves metadata with every partition led, or the deadline passes."""
        from rtap.kafka_admin import cluster_ready

        kafka = self.settings.kafka
        while True:
            code = process.poll()
            if code is not None:
                raise BrokerStartError(
                    f"the Kafka broker exited with code {code} while starting (log: {self.files.log})",
                    _log_tail(self.files.log),
                )
            if time.monotonic() > deadline:
                raise BrokerStartError(
                    f"the Kafka broker did not become ready on {self.bootstrap_servers} within {timeout_s:.0f}s "
                    f"(log: {self.files.log})",
                    _log_tail(self.files.log),
                )
            if accepts(kafka.host, kafka.port):
                with contextlib.suppress(BrokerError):
                    if cluster_ready(self.kafka_settings(), timeout_s=2.0):
                        return
            time.sleep(_POLL_S)

    def _wait_gone(self, pid: int, timeout_s: float) -> bool:
        if self._process is not None and self._process.pid == pid:
            try:
                self._process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                return False
            return True
        return wait_until(lambda: not self._is_mine(pid), timeout_s)
