"""Admission control of the dashboard API over a real, seeded chDB: N viewers of a panel cost about one query,
at most ``max_concurrent_queries`` queries run at once, and a request that finds no free slot within
``queue_timeout_s`` is a 503 with Retry-After, not a thread parked in front of the one read-only connection."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rtap import metrics
from rtap.dashboard.api import cache_step_s, create_app
from rtap.dashboard.definition import load_definition, parse_definition
from rtap.settings import DashboardSettings, Settings
from rtap.warehouse import WarehouseClient
from tests.support.seed import seeded_warehouse

VIEWERS = 12


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, WarehouseClient]]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("rtap-dashboard-admission"))
    with seeded_warehouse(settings, datetime.now(UTC) - timedelta(seconds=1)) as (_, reader):
        yield settings, reader


def queries(outcome: str) -> float:
    value = metrics.DASHBOARD.panel_queries.labels(outcome)._value.get()
    return float(value)


def with_dashboard(settings: Settings, **changes: Any) -> Settings:
    return settings.model_copy(update={"dashboard": DashboardSettings(**changes)})


def test_concurrent_viewers_of_a_panel_share_one_query(warehouse: tuple[Settings, WarehouseClient]) -> None:
    settings, reader = warehouse
    api = TestClient(create_app(with_dashboard(settings, cache_ttl_s=5.0), reader))
    ran, cached = queries("ran"), queries("cached")
    start = threading.Barrier(VIEWERS)

    def view(_: int) -> dict[str, Any]:
        start.wait()
        response = api.get("/api/panels/top_products")  # the page's live range: ends now
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    with ThreadPoolExecutor(VIEWERS) as pool:
        answers = list(pool.map(view, range(VIEWERS)))
    # One query per cache step; the viewers may straddle one step boundary.
    assert queries("ran") - ran <= 2
    assert queries("cached") - cached >= VIEWERS - 2
    assert len({(a["range_from"], a["range_to"], a["updated_at"]) for a in answers}) <= 2


def test_live_ranges_of_viewers_a_moment_apart_are_one_range(warehouse: tuple[Settings, WarehouseClient]) -> None:
    """The page asks for [now - 1 h, now) with its own clock: two viewers never send the same instants."""
    settings, reader = warehouse
    api = TestClient(create_app(with_dashboard(settings, cache_ttl_s=60.0), reader))
    now = datetime.now(UTC)
    step_start = now.replace(second=0, microsecond=0)
    answers = []
    for offset_ms in (1, 500, 59_000):
        end = step_start + timedelta(milliseconds=offset_ms)
        query = {"from": (end - timedelta(hours=1)).isoformat(), "to": end.isoformat()}
        response = api.get("/api/panels/orders_revenue", params=query)
        assert response.status_code == 200, response.text
        answers.append(response.json())

    def iso(moment: datetime) -> str:
        return moment.isoformat().replace("+00:00", "Z")

    step_end = step_start + timedelta(minutes=1)  # rounded up: whatever is stored by now is in the range
    expected = (iso(step_end - timedelta(hours=1)), iso(step_end))
    assert {(a["range_from"], a["range_to"]) for a in answers} == {expected}
    assert len({a["updated_at"] for a in answers}) == 1


@pytest.mark.parametrize(
    ("floor_s", "hours", "refresh_s", "step_s"),
    [
        (2.0, 0.25, 2, 2.0),
        (2.0, 1, 2, 2.0),
        (2.0, 6, 2, 12.0),
        (2.0, 24, 2, 48.0),
        (5.0, 1, 2, 5.0),
        (2.0, 1, 5, 5.0),  # a panel refreshed every 5 s is not recomputed every 2 s for out-of-phase pages
        (2.0, 24, 5, 48.0),
        (0.0, 24, 5, 0.0),  # 0: sharing is off, whatever the width and refresh
    ],
)
def test_a_wider_or_slower_live_range_is_shared_for_longer(
    floor_s: float, hours: float, refresh_s: int, step_s: float
) -> None:
    assert cache_step_s(floor_s, timedelta(hours=hours), refresh_s) == step_s


def test_viewers_of_the_widest_range_share_one_answer_for_its_longer_step(
    warehouse: tuple[Settings, WarehouseClient],
) -> None:
    """24 h is shared for 48 s with the 2 s floor: a script asking it back to back costs a query per 48 s."""
    settings, reader = warehouse
    api = TestClient(create_app(with_dashboard(settings, cache_ttl_s=2.0), reader))
    step = timedelta(seconds=48)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    step_start = epoch + ((datetime.now(UTC) - epoch) // step) * step
    ran = queries("ran")
    answers = []
    for offset_s in (0.001, 20.0, 47.0):  # three viewers' clocks across one 48 s step
        end = step_start + timedelta(seconds=offset_s)
        query = {"from": (end - timedelta(hours=24)).isoformat(), "to": end.isoformat()}
        response = api.get("/api/panels/active_users", params=query)
        assert response.status_code == 200, response.text
        answers.append(response.json())
    assert queries("ran") - ran == 1
    assert {a["range_to"] for a in answers} == {(step_start + step).isoformat().replace("+00:00", "Z")}


def test_a_panel_refreshed_every_5_s_is_recomputed_at_most_every_5_s(
    warehouse: tuple[Settings, WarehouseClient],
) -> None:
    """Pages poll a 5-s panel at their own phases: across one 5-s step they share one query, where a 2-s panel
    (the RTAP_DASHBOARD_CACHE_TTL_S floor) is recomputed in each of its steps."""
    settings, reader = warehouse
    api = TestClient(create_app(with_dashboard(settings, cache_ttl_s=2.0), reader))
    step = timedelta(seconds=5)  # every end below is within a step of now: a live range, aligned
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    step_start = epoch + ((datetime.now(UTC) - epoch) // step) * step
    for panel, refresh_s, expected_queries in (("top_products", 5, 1), ("orders_revenue", 2, 3)):
        assert load_definition().panels_by_id()[panel].refresh_seconds == refresh_s
        ran = queries("ran")
        for offset_s in (0.001, 2.5, 4.9):  # three pages' clocks across one 5-s step
            end = step_start + timedelta(seconds=offset_s)
            query = {"from": (end - timedelta(hours=1)).isoformat(), "to": end.isoformat()}
            response = api.get(f"/api/panels/{panel}", params=query)
            assert response.status_code == 200, response.text
        assert queries("ran") - ran == expected_queries, panel


def requests_on_the_panel_route() -> float:
    value = metrics.DASHBOARD.requests.labels("/api/panels/{panel_id}", "2xx")._value.get()
    return float(value)


def test_a_cached_answer_is_the_routes_answer_and_is_counted_as_one(
    warehouse: tuple[Settings, WarehouseClient],
) -> None:
    """A shared answer is sent before the framework (rtap.dashboard.admission.CachedAnswers): the same bytes and
    headers as the route's, in the same metrics."""
    settings, reader = warehouse
    api = TestClient(create_app(with_dashboard(settings, cache_ttl_s=3600.0), reader))
    query = {"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T01:00:00Z"}
    ran, cached, answered = queries("ran"), queries("cached"), requests_on_the_panel_route()
    first = api.get("/api/panels/orders_revenue", params=query)
    again = api.get("/api/panels/orders_revenue", params=query)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"] == "application/json"
    assert again.headers["content-length"] == first.headers["content-length"]
    assert (queries("ran") - ran, queries("cached") - cached) == (1, 1)
    assert requests_on_the_panel_route() - answered == 2


@pytest.mark.parametrize(
    ("query", "status", "reason"),
    [
        ("from=yesterday", 400, "'from' is not an ISO 8601 date-time"),
        ("to=2026-01-01T01:00:00Z&from=2026-01-01T02:00:00Z", 400, "must be before"),
        ("from=2026-01-01T00:00:00Z&to=2026-01-03T00:00:00Z", 400, "at most 24 h"),
    ],
)
def test_a_request_the_cache_cannot_answer_is_refused_by_the_route(
    warehouse: tuple[Settings, WarehouseClient], query: str, status: int, reason: str
) -> None:
    settings, reader = warehouse
    api = TestClient(create_app(with_dashboard(settings, cache_ttl_s=3600.0), reader))
    api.get("/api/panels/orders_revenue")  # something is cached
    refused = api.get(f"/api/panels/orders_revenue?{query}")
    assert refused.status_code == status
    assert reason in refused.json()["detail"]
    assert api.get("/api/panels/nothing_like_it").status_code == 404


def test_a_repeated_parameter_is_read_by_the_route_as_always(warehouse: tuple[Settings, WarehouseClient]) -> None:
    settings, reader = warehouse
    api = TestClient(create_app(with_dashboard(settings, cache_ttl_s=3600.0), reader))
    once = "from=2026-01-01T00:00:00Z&to=2026-01-01T01:00:00Z"
    first = api.get(f"/api/panels/orders_revenue?{once}")
    twice = api.get(f"/api/panels/orders_revenue?from=2025-01-01T00:00:00Z&{once}")
    assert twice.status_code == first.status_code == 200
    assert twice.json()["range_from"] == first.json()["range_from"]  # the route takes the last value


def test_a_range_in_the_past_is_answered_as_asked(warehouse: tuple[Settings, WarehouseClient]) -> None:
    settings, reader = warehouse
    api = TestClient(create_app(settings, reader))
    query = {"from": "2026-01-01T00:00:00.123Z", "to": "2026-01-01T01:00:00.456Z"}
    body = api.get("/api/panels/orders_revenue", params=query).json()
    assert (body["range_from"], body["range_to"]) == ("2026-01-01T00:00:00.123000Z", "2026-01-01T01:00:00.456000Z")


SLOW = parse_definition(
    {
        "dashboards": [
            {
                "id": "slow",
                "title": "Slow",
                "panels": [
                    {
                        "id": f"slow_{n}",
                        "title": f"Takes a second ({n})",
                        "chart": "number",
                        "refresh_seconds": 5,
                        "sql": f"SELECT sleep(1) AS slept, {n} AS n FROM {{db}}.pipeline_batches "
                        "WHERE finished_at >= {from:DateTime64(3,'UTC')} AND finished_at < {to:DateTime64(3,'UTC')} "
                        "LIMIT 1",
                    }
                    for n in range(3)
                ],
            }
        ]
    }
)


def test_a_request_without_a_free_slot_is_a_503_with_retry_after(warehouse: tuple[Settings, WarehouseClient]) -> None:
    settings, reader = warehouse
    app = create_app(with_dashboard(settings, max_concurrent_queries=1, queue_timeout_s=0.2), reader, SLOW)
    api = TestClient(app)
    busy = queries("busy")
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(api.get, "/api/panels/slow_0")
        threading.Event().wait(0.3)  # the first query holds the one slot for a second
        refused = api.get("/api/panels/slow_1")
        assert first.result().status_code == 200
    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"] == "1"
    assert "slow_1" in refused.json()["detail"]
    assert queries("busy") - busy == 1
    assert api.get("/api/panels/slow_1").status_code == 200  # the slot is free again


def test_the_dashboard_admits_a_bounded_number_of_queries_at_once(
    warehouse: tuple[Settings, WarehouseClient],
) -> None:
    """Every panel of the definition at once, from many viewers, with two slots: never more than two at once."""
    settings, reader = warehouse
    app = create_app(
        with_dashboard(settings, max_concurrent_queries=2, queue_timeout_s=30.0, client_burst=1000), reader
    )
    api = TestClient(app)
    panels = sorted(load_definition().panels_by_id())
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda p: api.get(f"/api/panels/{p}").status_code, panels * 2))
    assert set(statuses) == {200}
    assert app.state.admission.most_at_once <= 2


def test_a_client_looping_on_a_panel_is_refused_before_its_requests_cost_a_thread(
    warehouse: tuple[Settings, WarehouseClient],
) -> None:
    """Beyond its burst a client gets 429 with Retry-After, counted with the dashboard's requests; a page
    viewer at another address is served meanwhile."""
    settings, reader = warehouse
    app = create_app(with_dashboard(settings, client_burst=5, client_requests_per_s=0.5), reader)
    looping, viewer = TestClient(app, client=("10.1.0.1", 1)), TestClient(app, client=("10.1.0.2", 1))
    refused_before = metrics.DASHBOARD.rate_limited._value.get()
    statuses = [looping.get("/api/panels/events_total").status_code for _ in range(20)]
    assert statuses == [200] * 5 + [429] * 15
    assert looping.get("/api/panels/events_total").headers["Retry-After"] == "2"
    assert viewer.get("/api/panels/events_total").status_code == 200
    assert metrics.DASHBOARD.rate_limited._value.get() - refused_before == 16


def test_ranges_are_capped_by_a_setting(warehouse: tuple[Settings, WarehouseClient]) -> None:
    settings, reader = warehouse
    assert DashboardSettings().max_range_hours == 24  # the widest range the page offers
    api = TestClient(create_app(with_dashboard(settings, max_range_hours=2), reader))
    query = {"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T02:00:01Z"}
    response = api.get("/api/panels/top_products", params=query)
    assert response.status_code == 400
    assert "at most 2 h" in response.json()["detail"]


def test_a_page_asks_for_its_due_panels_in_one_request_and_a_busy_one_fails_alone(
    warehouse: tuple[Settings, WarehouseClient],
) -> None:
    """``/api/panels?ids=``: each panel answered as its own route answers it, from the same shared results; one
    without a query slot carries its own 503 and Retry-After while the others are answered."""
    settings, reader = warehouse
    app = create_app(with_dashboard(settings, max_concurrent_queries=1, queue_timeout_s=0.2), reader, SLOW)
    api = TestClient(app)
    end = datetime.now(UTC) - timedelta(minutes=1)  # a range in the past: one cache key whenever it is asked
    span = {"from": (end - timedelta(hours=1)).isoformat(), "to": end.isoformat()}
    alone = api.get("/api/panels/slow_0", params=span).json()
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(api.get, "/api/panels/slow_2", params=span)
        threading.Event().wait(0.3)  # slow_2 holds the one slot for a second
        both = api.get("/api/panels", params={"ids": "slow_0,slow_1", **span})
        assert first.result().status_code == 200
    assert both.status_code == 200, both.text
    answers = both.json()["panels"]
    assert list(answers) == ["slow_0", "slow_1"]
    assert answers["slow_0"] == alone  # the shared result, byte for byte
    assert answers["slow_1"]["error"]["status"] == 503
    assert answers["slow_1"]["error"]["retry_after_s"] == 1
    assert "slow_1" in answers["slow_1"]["error"]["detail"]
    assert api.get("/api/panels", params={"ids": "slow_1", **span}).json()["panels"]["slow_1"]["rows"]  # free again


@pytest.mark.parametrize(
    ("params", "status", "named"),
    [
        ({"ids": "slow_0,nope"}, 404, "'nope'"),
        ({"ids": ""}, 404, "''"),
        ({"ids": "slow_0,slow_0"}, 400, "twice"),
        ({"ids": "slow_0", "from": "yesterday"}, 400, "'from'"),
        ({"ids": "slow_0", "from": "2026-01-02T00:00:00", "to": "2026-01-01T00:00:00"}, 400, "'from'"),
        ({}, 422, "ids"),
    ],
)
def test_a_bad_panel_list_or_range_is_refused_whole_before_any_query(
    warehouse: tuple[Settings, WarehouseClient], params: dict[str, str], status: int, named: str
) -> None:
    settings, reader = warehouse
    api = TestClient(create_app(settings, reader, SLOW))
    ran = queries("ran")
    response = api.get("/api/panels", params=params)
    assert response.status_code == status, response.text
    assert named in str(response.json()["detail"])
    assert queries("ran") == ran
