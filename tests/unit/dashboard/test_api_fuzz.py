"""The dashboard API fuzzed from its own OpenAPI document (schemathesis), in-process over a real, seeded chDB.

Properties: no 5xx for any request, every response conforms to the document, and no query is unbounded: a
panel answers at most ``MAX_ROWS`` rows over at most ``max_range_hours``, and a longer range is a 4xx before
any SQL runs. Schemathesis draws panel ids as arbitrary strings (almost all 404), so a second, targeted test
draws real panel ids with hostile time ranges and validates those responses against the same document.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.schemas import OpenApiSchema

from rtap.dashboard import create_app
from rtap.dashboard.api import MAX_ROWS
from rtap.dashboard.definition import load_definition
from rtap.settings import DashboardSettings, Settings
from tests.support.seed import seeded_warehouse

PANEL_IDS = sorted(load_definition().panels_by_id())
MAX_RANGE_HOURS = Settings().dashboard.max_range_hours
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenApiSchema]:
    data_dir: Path = tmp_path_factory.mktemp("rtap-dashboard-fuzz")
    # A fuzzer asks far faster than a page: no per-client rate limit here (tests/unit/dashboard/test_admission.py).
    app_settings = Settings(data_dir=data_dir, dashboard=DashboardSettings(client_burst=1_000_000))
    now = datetime.now(UTC) - timedelta(seconds=1)
    with seeded_warehouse(app_settings, now) as (_, reader):
        app = create_app(app_settings, reader)
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


def assert_names_the_parameter(path: str, status: int, body: Any) -> None:
    """A refusal of the panel endpoint says which parameter is wrong: the client can act on it."""
    if not path.startswith("/api/panels/") or status not in {400, 404}:
        return
    detail = body["detail"]
    assert isinstance(detail, str)
    assert ("'from'" in detail or "'to'" in detail) if status == 400 else "panel" in detail, detail


def assert_bounded(path: str, status: int, body: Any) -> None:
    """What "no unbounded query" means for one answer of the panel endpoint."""
    if not path.startswith("/api/panels/") or status != 200:
        return
    assert body["row_count"] == len(body["rows"]) <= MAX_ROWS
    if body["truncated"]:  # cut only at the cap, never earlier
        assert body["row_count"] == MAX_ROWS
    span = datetime.fromisoformat(body["range_to"]) - datetime.fromisoformat(body["range_from"])
    assert timedelta(0) < span <= timedelta(hours=MAX_RANGE_HOURS)


def test_no_5xx_and_every_response_conforms(api_schema: OpenApiSchema) -> None:
    # One hypothesis run per operation of the document (schemathesis' lazy pytest loader predates pytest 9).
    results = list(api_schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results), "the API's own OpenAPI document has an invalid operation"
    assert {op.path for op in operations} >= {"/api/health", "/api/dashboards", "/api/panels/{panel_id}"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @FUZZ
        def fuzz(case: schemathesis.Case[Any]) -> None:
            response = case.call_and_validate()  # not_a_server_error, status/content-type/schema conformance
            assert response.status_code < 500, response.text
            assert_names_the_parameter(case.formatted_path, response.status_code, response.json())
            assert_bounded(case.formatted_path, response.status_code, response.json())

        fuzz()


def _instant(moment: datetime, offset_minutes: int, naive: bool) -> str:
    if naive:
        return moment.isoformat()
    return moment.replace(tzinfo=timezone(timedelta(minutes=offset_minutes))).isoformat()


# Instants over all of Python's range (year 1 to 9999: where a default range or an offset overflows), any
# offset, sometimes naive; garbage text.
_moment = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999))
_instant_text = st.builds(_instant, _moment, st.integers(min_value=-18 * 60 + 1, max_value=18 * 60 - 1), st.booleans())
_query_value = st.one_of(st.none(), _instant_text, st.text(max_size=30))
_near = st.builds(
    lambda start, minutes: (start.isoformat() + "Z", (start + timedelta(minutes=minutes)).isoformat() + "Z"),
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1)),
    st.integers(min_value=-10, max_value=MAX_RANGE_HOURS * 60 + 10),
)


def _as_utc(text: str) -> datetime:
    """An accepted bound as the API reads it: an instant without an offset is UTC."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@given(
    panel_id=st.sampled_from(PANEL_IDS),
    bounds=st.one_of(st.tuples(_query_value, _query_value), _near),
)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_real_panels_with_hostile_ranges_are_bounded(
    api_schema: OpenApiSchema, panel_id: str, bounds: tuple[str | None, str | None]
) -> None:
    raw_from, raw_to = bounds
    query = {name: value for name, value in (("from", raw_from), ("to", raw_to)) if value is not None}
    case = api_schema["/api/panels/{panel_id}"]["GET"].Case(path_parameters={"panel_id": panel_id}, query=query)
    response = case.call_and_validate()
    assert response.status_code in {200, 400}, response.text
    assert_names_the_parameter(case.formatted_path, response.status_code, response.json())
    if raw_from and raw_to and response.status_code == 200:
        span = _as_utc(raw_to) - _as_utc(raw_from)
        assert span <= timedelta(hours=MAX_RANGE_HOURS)
    assert_bounded(case.formatted_path, response.status_code, response.json())


_START = datetime(2026, 11, 27, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (_START.isoformat(), (_START + timedelta(hours=MAX_RANGE_HOURS, seconds=1)).isoformat()),  # one second too long
        ("2025-11-29T00:00:00+14:00", "2026-11-29T00:00:00-12:00"),  # a year, in opposite offsets
        ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z"),  # everything representable
    ],
)
def test_a_range_beyond_the_maximum_is_refused_before_any_query(
    api_schema: OpenApiSchema, start: str, end: str
) -> None:
    for panel_id in PANEL_IDS:
        case = api_schema["/api/panels/{panel_id}"]["GET"].Case(
            path_parameters={"panel_id": panel_id}, query={"from": start, "to": end}
        )
        response = case.call_and_validate()
        assert response.status_code == 400, response.text
        assert f"at most {MAX_RANGE_HOURS} h" in response.json()["detail"]
        assert_names_the_parameter(case.formatted_path, response.status_code, response.json())


@pytest.mark.parametrize(
    "query",
    [
        {"from": "0999-01-01T00:00:00Z", "to": "0999-01-02T00:00:00Z"},
        {"to": "0001-01-01T00:00:00"},  # the default range would start before year 1
        {"to": "0001-01-01T00:30:00+00:00"},
        {"from": "0001-01-01T00:00:00+01:00"},  # in UTC, before year 1
        {"to": "9999-12-31T23:59:59-01:00"},  # in UTC, after year 9999
        {"from": "9999-12-31T23:00:00", "to": "9999-12-31T23:59:59.999999"},
        {"from": "0001-01-01T00:00:00", "to": "0001-01-01T01:00:00"},
    ],
)
def test_instants_at_the_edges_of_the_calendar_are_a_400_naming_the_parameter(
    api_schema: OpenApiSchema, query: dict[str, str]
) -> None:
    case = api_schema["/api/panels/{panel_id}"]["GET"].Case(path_parameters={"panel_id": PANEL_IDS[0]}, query=query)
    response = case.call()
    assert response.status_code == 400, response.text
    assert_names_the_parameter(case.formatted_path, response.status_code, response.json())
