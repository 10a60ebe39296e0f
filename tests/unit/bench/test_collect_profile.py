"""rtap_bench.collect_profile (bench/profile_collect.py): its requests go through the collector's real routes and
are accepted, and a route that reached the sink would stop the profile (its sink refuses)."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from rtap_bench import collect_profile as profile_collect


@pytest.mark.parametrize("events", [1, 25])
def test_the_profile_runs_the_noop_routes_and_measures_cpu(events: int) -> None:
    cpu = asyncio.run(profile_collect.run(50, events))
    assert 0 < cpu < 1.0  # seconds a request: a figure, not a benchmark target


def test_its_bodies_are_what_the_tracker_sends() -> None:
    single, batch = orjson.loads(profile_collect.body(1)), orjson.loads(profile_collect.body(3))
    assert single["type"] == "page_view"
    assert single["write_key"] == batch["write_key"]
    assert len({event["event_id"] for event in batch["events"]}) == 3
