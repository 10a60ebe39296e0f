"""A Spark standalone cluster on one machine: one master and N workers from the Spark that pyspark ships.

pyspark's package is a Spark distribution (``bin/spark-class``, ``jars/``), so the cluster runs exactly the
Spark version the job is built against; nothing else is installed. Each daemon is ``spark-class`` (which
``exec``s its JVM, so the child's pid is the daemon's) in its own process group, bound to loopback
(``SPARK_LOCAL_IP``, which also binds the web UIs). A worker's executors are its children, in its group:
killing the group is what losing that machine looks like.

Attached (the default, for tests and ``rtap up``) the daemons die with this process (``PR_SET_PDEATHSIG``)
and at interpreter exit; detached (``rtap cluster up``) they are found again through pid files.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtap.errors import DependencyError, ServiceError
from rtap.runtime.cluster.layout import ClusterLayout
from rtap.runtime.process import Supervised, read_pid, runs_with, signal_group, spawn, wait_until

MASTER_MAIN = "org.apache.spark.deploy.master.Master"
WORKER_MAIN = "org.apache.spark.deploy.worker.Worker"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
_POLL_S = 0.5
# Heap of the master and worker daemons themselves (executors get spark.executor.memory): they only keep
# cluster state, and the machine's memory is better spent on executors.
DAEMON_MEMORY = "256m"
# What the daemons read at start; passing the file also marks their command lines as this cluster's.
DEFAULTS = """\
# Written by rtap on every start of the local Spark cluster.
spark.worker.cleanup.enabled true
spark.ui.killEnabled false
"""


def spark_home() -> Path:
    """The Spark distribution inside the installed pyspark package."""
    spec = importlib.util.find_spec("pyspark")
    locations = spec.submodule_search_locations if spec is not None else None
    if not locations:
        raise DependencyError("pyspark is not installed: `make install`")
    home = Path(next(iter(locations)))
    if not (home / "bin" / "spark-class").is_file() or not (home / "jars").is_dir():
        raise DependencyError(f"{home} is not a Spark distribution (no bin/spark-class or jars/)")
    return home


class SparkDaemon:
    """One master or worker process, with its log, pid file and command line under ``root``."""

    def __init__(self, name: str, root: Path, args: list[str], *, attached: bool) -> None:
        self.name = name
        self.root = root
        self.args = args
        self.attached = attached
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.root / f"{self.name}.log"

    @property
    def pid_file(self) -> Path:
        return self.root / f"{self.name}.pid"

    @property
    def properties_file(self) -> Path:
        return self.root / "spark-defaults.conf"

    def command(self, home: Path) -> list[str]:
        return [str(home / "bin" / "spark-class"), *self.args, "--properties-file", str(self.properties_file)]

    def start(self, home: Path, environment: dict[str, str]) -> int:
        self.root.mkdir(parents=True, exist_ok=True)
        self._process = spawn(self.command(home), log=self.log, cwd=self.root, attached=self.attached, env=environment)
        self.pid_file.write_text(f"{self._process.pid}\n")
        return self._process.pid

    def pid(self) -> int | None:
        """The daemon's pid if it runs (started here, or found through the pid file and its command line)."""
        if self._process is not None and self._process.poll() is None:
            return self._process.pid
        pid = read_pid(self.pid_file)
        # spark-class execs the JVM: the pid is java's, with the main class and our properties file as arguments.
        return pid if pid is not None and runs_with(pid, self.args[0], str(self.properties_file)) else None

    def exited(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def signal_group(self, sig: signal.Signals) -> None:
        pid = self.pid()
        if pid is not None:
            signal_group(pid, sig)

    def wait_gone(self, timeout_s: float) -> bool:
        return wait_until(lambda: self.pid() is None, timeout_s)

    def forget(self) -> None:
        self.pid_file.unlink(missing_ok=True)
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=5)
        self._process = None


@dataclass(frozen=True)
class MasterState:
    """What the master's JSON endpoint says: its status and its workers by state."""

    status: str
    alive_workers: int
    cores: int

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> MasterState:
        workers = raw.get("workers", [])
        return cls(
            status=str(raw.get("status", "UNKNOWN")),
            alive_workers=sum(1 for w in workers if w.get("state") == "ALIVE"),
            cores=int(raw.get("cores", 0)),
        )


class SparkStandalone(Supervised):
    """The master and workers of ``layout``; files below ``root/spark-master`` and ``root/spark-worker-<n>``."""

    def __init__(
        self,
        layout: ClusterLayout,
        root: Path,
        *,
        worker_cores: int = 1,
        worker_memory: str = "1g",
        attached: bool = True,
    ) -> None:
        self.layout = layout
        self.root = root
        self.attached = attached
        host = layout.host
        self.master = SparkDaemon(
            "master",
            root / "spark-master",
            [
                MASTER_MAIN,
                "--host",
                host,
                "--port",
                str(layout.master_port),
                "--webui-port",
                str(layout.master_ui_port),
            ],
            attached=attached,
        )
        self.workers = [
            SparkDaemon(
                f"worker-{n}",
                root / f"spark-worker-{n}",
                [
                    *(WORKER_MAIN, "--host", host, "--port", str(port), "--webui-port", str(ui_port)),
                    *("--cores", str(worker_cores), "--memory", worker_memory),
                    *("--work-dir", str(root / f"spark-worker-{n}" / "work"), layout.master_url),
                ],
                attached=attached,
            )
            for n, (port, ui_port) in enumerate(zip(layout.worker_ports, layout.worker_ui_ports, strict=True), start=1)
        ]

    @property
    def master_url(self) -> str:
        return self.layout.master_url

    def _environment(self, home: Path) -> dict[str, str]:
        return {
            **os.environ,
            "SPARK_HOME": str(home),
            "SPARK_LOCAL_IP": self.layout.host,
            "SPARK_DAEMON_MEMORY": DAEMON_MEMORY,
            # An empty configuration directory: a user's spark-env.sh or log4j2.properties must not change
            # where the daemons bind or what they log.
            "SPARK_CONF_DIR": str(self.root / "spark-conf"),
            "SPARK_NO_DAEMONIZE": "1",
        }

    def start(self, timeout_s: float = START_TIMEOUT_S, *, wait: bool = True) -> None:
        """Start the master and every worker; return once all workers are ALIVE at the master (or at once with
        ``wait=False``, then :meth:`wait_workers`).

        After a failure nothing started here is left running.
        """
        running = [d.name for d in (self.master, *self.workers) if d.pid() is not None]
        if running:
            raise ServiceError(f"the local Spark cluster in {self.root} already runs ({', '.join(running)})")
        home = spark_home()
        environment = self._environment(home)
        (self.root / "spark-conf").mkdir(parents=True, exist_ok=True)
        try:
            for daemon in (self.master, *self.workers):
                daemon.root.mkdir(parents=True, exist_ok=True)
                daemon.properties_file.write_text(DEFAULTS)
            self.master.start(home, environment)
            for worker in self.workers:
                worker.start(home, environment)
            if wait:
                self.wait_workers(len(self.workers), timeout_s)
        except BaseException:
            self.stop()
            raise
        if self.attached:
            atexit.register(self.stop)

    def state(self, timeout_s: float = 5.0) -> MasterState:
        """The master's view of the cluster (its web UI's JSON endpoint)."""
        import httpx

        url = f"http://{self.layout.host}:{self.layout.master_ui_port}/json/"
        try:
            response = httpx.get(url, timeout=timeout_s)
            response.raise_for_status()
            return MasterState.from_json(response.json())
        except (httpx.HTTPError, ValueError) as exc:
            raise ServiceError(f"the Spark master at {url} did not answer: {exc}") from exc

    def wait_workers(self, count: int, timeout_s: float = START_TIMEOUT_S) -> MasterState:
        """Until ``count`` workers are ALIVE at the master; fails early if a daemon exits."""
        deadline = time.monotonic() + timeout_s
        last: MasterState | str = "no answer"
        while True:
            for daemon in (self.master, *self.workers):
                code = daemon.exited()
                if code is not None:
                    raise ServiceError(f"Spark {daemon.name} exited with code {code} (log: {daemon.log})")
            with contextlib.suppress(ServiceError):
                last = self.state()
                if isinstance(last, MasterState) and last.alive_workers >= count:
                    return last
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"{count} Spark workers were not alive at {self.master_url} within {timeout_s:.0f}s "
                    f"(master: {last}; logs in {self.root})"
                )
            time.sleep(_POLL_S)

    def kill_worker(self, index: int) -> int:
        """SIGKILL worker ``index`` (0-based) with its executors, as losing its machine would; returns its pid."""
        worker = self.workers[index]
        pid = worker.pid()
        if pid is None:
            raise ServiceError(f"Spark {worker.name} is not running")
        os.killpg(pid, signal.SIGKILL)
        worker.wait_gone(10.0)
        worker.forget()
        return pid

    def pids(self) -> dict[str, int | None]:
        return {f"spark-{d.name}": d.pid() for d in (self.master, *self.workers)}

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM workers and master (SIGKILL after ``timeout_s``); safe to call twice or after a kill."""
        atexit.unregister(self.stop)
        daemons = [*self.workers, self.master]
        for daemon in daemons:
            daemon.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for daemon in daemons:
            if not daemon.wait_gone(max(0.0, deadline - time.monotonic())):
                daemon.signal_group(signal.SIGKILL)
                daemon.wait_gone(10.0)
            daemon.forget()
