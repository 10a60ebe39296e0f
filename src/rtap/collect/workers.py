"""Several collector processes on one listening socket (``RTAP_COLLECT_WORKERS`` > 1), and the supervisor of them.

Why processes: one interpreter is the collector's ceiling. On this project's 2-core machine it served 37,000
events/s in batches of 25 within a p99 of 25 ms, and 62,000 at 45 ms with one core left idle; py-spy found the
interpreter busy in 85% of its samples (bench/results/collect.md, bench/README.md). A second process uses the
second core.

How: ``rtap collect`` binds the socket and then only supervises. Each worker is a whole collector (its own
uvicorn, Kafka producer, bounded queue and connection limit, and its share of each write key's rate:
rtap.collect.limiters) that inherits the listening socket; the kernel hands each new connection to one of them.
Workers are started with multiprocessing's ``spawn``, a fresh interpreter: never a fork of a process whose
librdkafka threads may run.

* A worker that dies is started again, with a line on stderr. One that dies within :data:`QUICK_EXIT_S` of its
  start :data:`CRASH_LOOP` times in a row is a crash loop: the supervisor stops the others and fails with the
  worker's exit code, so ``rtap up`` reports it, rather than restarting it forever.
* Each worker is in a process group of its own and dies with the supervisor (``PR_SET_PDEATHSIG``): Ctrl-C
  reaches the supervisor only, which sends each worker one SIGTERM; a worker then answers what it has taken and
  flushes its producer (rtap.collect.server), as a single process does.
* Metrics are prometheus-client's multiprocess mode in a private temporary folder (rtap.metrics.endpoint):
  ``GET /metrics`` on any worker sums every worker's counters, a dead worker's gauges are dropped, and no
  ``process_*`` metrics are served. ``GET /healthz`` is the health of whichever worker answers.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from types import FrameType

from rtap.collect.server import check_exposure, serve_process
from rtap.errors import RtapError, ServiceError
from rtap.metrics.endpoint import MULTIPROCESS_DIR
from rtap.runtime.process import die_with
from rtap.settings import Settings

# A worker that exits this soon after its start, CRASH_LOOP times in a row, will not come up by restarting.
QUICK_EXIT_S = 10.0
CRASH_LOOP = 3
POLL_S = 0.2
# After a stop, how long a worker may take beyond its producer's ack timeout to finish before SIGKILL.
STOP_GRACE_S = 5.0


@dataclass
class _Worker:
    index: int
    process: BaseProcess
    started: float
    quick_exits: int = 0


_Start = Callable[[int, int], _Worker]


def serve(settings: Settings, sock: socket.socket) -> None:
    """Serve on ``sock`` until SIGINT or SIGTERM (in the main thread): in this process, or in
    ``settings.collect.workers`` processes under this one."""
    check_exposure(settings.collect, settings.metrics)
    if settings.collect.workers == 1:
        serve_process(settings, sock)
    else:
        supervise(settings, sock)


def supervise(settings: Settings, sock: socket.socket) -> None:
    """Run ``settings.collect.workers`` collector processes on ``sock`` until SIGINT or SIGTERM, restarting any
    that dies; :class:`~rtap.errors.ServiceError` when one crash-loops (after stopping the others)."""
    stopping = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    context = multiprocessing.get_context("spawn")
    workers: list[_Worker] = []
    with tempfile.TemporaryDirectory(prefix="rtap-collect-metrics-") as metrics_dir:
        os.environ[MULTIPROCESS_DIR] = metrics_dir  # inherited by every worker, before it imports prometheus-client

        def start(index: int, quick_exits: int = 0) -> _Worker:
            process = context.Process(
                target=_work, args=(settings, sock, os.getpid()), name=f"rtap-collect-{index}", daemon=False
            )
            process.start()
            return _Worker(index, process, time.monotonic(), quick_exits)

        try:
            workers.extend(start(index) for index in range(settings.collect.workers))
            while not stopping.wait(POLL_S):
                for slot, worker in enumerate(workers):
                    if worker.process.is_alive():
                        continue
                    workers[slot] = _restart(worker, start)
        finally:
            _stop_all(workers, settings.collect.ack_timeout_s + STOP_GRACE_S)
            os.environ.pop(MULTIPROCESS_DIR, None)
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _restart(worker: _Worker, start: _Start) -> _Worker:
    from prometheus_client import multiprocess

    code = worker.process.exitcode
    if worker.process.pid is not None:
        multiprocess.mark_process_dead(worker.process.pid)  # type: ignore[no-untyped-call]
    quick = time.monotonic() - worker.started < QUICK_EXIT_S
    quick_exits = worker.quick_exits + 1 if quick else 0
    if quick_exits >= CRASH_LOOP:
        raise ServiceError(
            f"collector worker {worker.index} exited with code {code} {quick_exits} times in a row, each within "
            f"{QUICK_EXIT_S:.0f} s of its start: stopped (its error is above)"
        )
    print(
        f"collector worker {worker.index} (pid {worker.process.pid}) exited with code {code}: restarted",
        file=sys.stderr,
    )
    return start(worker.index, quick_exits)


def _stop_all(workers: list[_Worker], grace_s: float) -> None:
    """One SIGTERM to each live worker (each finishes and flushes), then SIGKILL to any still running after
    ``grace_s``."""
    for worker in workers:
        if worker.process.is_alive():
            worker.process.terminate()
    deadline = time.monotonic() + grace_s
    for worker in workers:
        worker.process.join(max(0.0, deadline - time.monotonic()))
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()


def _work(settings: Settings, sock: socket.socket, supervisor: int) -> None:
    """One worker: a collector on the inherited socket until SIGTERM."""
    os.setpgrp()  # Ctrl-C reaches the supervisor only; it stops each worker once
    die_with(supervisor)
    try:
        serve_process(settings, sock)
    except RtapError as exc:
        print(f"error: collector worker: {' '.join(str(exc).split())}", file=sys.stderr)
        sys.exit(1)
