"""How a stop of `rtap up` waits for the job to read what Kafka holds (``rtap.runtime.stack.up.drain``)."""

from __future__ import annotations

import threading

from rtap.runtime.stack.up import drain, unread

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
