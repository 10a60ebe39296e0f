"""How a stop of `rtap up` waits for the job to read what Kafka holds (``rtap.runtime.stack.up.drain``)."""

from __future__ import annotations

import io
import threading

from rich.console import Console

from rtap.errors import BrokerError
from rtap.runtime.stack.console import OperatorConsole
from rtap.runtime.stack.up import drain, finish_reading, unread

ENDS = {("clickstream.events", 0): 100, ("clickstream.events", 1): 50, ("browser.events", 0): 7}


def test_unread_counts_the_records_past_each_committed_position() -> None:
    assert unread({("clickstream.events", 0): 90, ("clickstream.events", 1): 50}, ENDS) == 10 + 0 + 7
    assert unread({key: end + 5 for key, end in ENDS.items()}, ENDS) == 0  # ahead of the snapshot: nothing


def test_the_drain_waits_until_the_job_has_committed_up_to_the_ends() -> None:
    reads = iter([{}, {("clickstream.events", 0): 100}, dict(ENDS)])
    assert drain(ENDS, lambda: next(reads), lambda: True, threading.Event(), poll_s=0.001) == 0


def test_the_drain_gives_up_when_the_job_stops_the_time_is_up_or_a_second_signal_comes() -> None:
    behind = {("clickstream.events", 0): 60}
    assert drain(ENDS, lambda: behind, lambda: False, threading.Event()) == 40 + 50 + 7
    assert drain(ENDS, lambda: behind, lambda: True, threading.Event(), timeout_s=0.05, poll_s=0.01) == 97
    now = threading.Event()
    now.set()
    assert drain(ENDS, lambda: behind, lambda: True, now, timeout_s=60) == 97


def _console() -> tuple[OperatorConsole, io.StringIO]:
    out = io.StringIO()
    return OperatorConsole(Console(file=out, width=200)), out


def test_a_stop_says_how_many_records_it_waits_for_and_how_many_are_left() -> None:
    console, out = _console()
    reads = iter([{}, {}, dict(ENDS)])
    finish_reading(console, lambda: ENDS, lambda: next(reads), lambda: True, threading.Event())
    assert out.getvalue().splitlines() == [
        "stopping: the stream job reads the 157 records it has not read yet (at most 15 s; Ctrl-C again to stop now)…",
        "✓ every record in the input topics read and committed",
    ]
    console, out = _console()
    finish_reading(console, lambda: ENDS, lambda: {}, lambda: False, threading.Event())  # the job has stopped
    assert out.getvalue().splitlines()[-1] == "157 records left in Kafka: the next start reads them"
    console, out = _console()
    finish_reading(console, lambda: ENDS, lambda: ENDS, lambda: True, threading.Event())  # nothing to read
    assert out.getvalue() == ""


def test_a_broker_that_cannot_say_where_its_logs_end_does_not_hold_the_stop() -> None:
    def unreachable() -> dict[tuple[str, int], int]:
        raise BrokerError("cannot read the stable offsets of clickstream.events: broker transport failure")

    console, out = _console()
    finish_reading(console, unreachable, lambda: {}, lambda: True, threading.Event())
    assert out.getvalue().splitlines() == [
        "stopping without waiting for the stream job to read what Kafka holds: "
        "cannot read the stable offsets of clickstream.events: broker transport failure"
    ]
