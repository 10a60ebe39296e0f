"""Waiting for a state that settles a little after the action that causes it (a scrape, a worker's gauge)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def settled(read: Callable[[], T], done: Callable[[T], bool], timeout_s: float, every_s: float = 0.5) -> T:
    """``read()`` again every ``every_s`` until ``done`` accepts its value or ``timeout_s`` passed; the last value,
    for the caller to assert on, so that a failure shows what was seen rather than a timeout."""
    deadline = time.monotonic() + timeout_s
    value = read()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(every_s)
        value = read()
    return value
