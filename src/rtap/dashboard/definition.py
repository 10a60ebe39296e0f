"""The dashboards definition (``dashboards.yaml``): loaded once, validated, shared by every renderer.

The built-in web dashboard and the Metabase provisioning both read this model, so a panel exists in one
place only. Validation happens at load time and names the offending field (``dashboards[0].panels[3].chart:
...``), because a typo in a panel must fail ``rtap dashboard`` at start, not as a blank chart later.
"""

from __future__ import annotations

import re
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rtap.errors import ConfigError
from rtap.settings import Settings

# A parameter as panels write it: ClickHouse's native `{name:Type}` placeholder.
PARAMETER = re.compile(r"\{(?P<name>[A-Za-z_][A-Za-z0-9_]*):(?P<type>[^{}]+)\}")
# The time range the viewer picked (DateTime64), and settings a panel's meaning depends on, with their type:
# a session counts as ended only after RTAP_STREAM_SESSION_GAP_S of inactivity, and browser events are those
# read from RTAP_KAFKA_BROWSER_TOPIC; the SQL must not hard-code a copy of either.
TIME_PARAMETERS = frozenset({"from", "to"})
SETTING_PARAMETERS = {"session_gap_s": "UInt32", "browser_topic": "String"}


def setting_parameters(settings: Settings) -> dict[str, int | str]:
    """The values bound to :data:`SETTING_PARAMETERS`, from the settings the stream job runs with."""
    return {"session_gap_s": round(settings.stream.session_gap_s), "browser_topic": settings.kafka.browser_topic}


_IDENTIFIER = r"^[a-z][a-z0-9_]*$"
_COLUMN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# Statements a panel may start with: panels read, they never write (the client is read-only as well).
_READ_ONLY_START = re.compile(r"^\s*(SELECT|WITH)\b", re.IGNORECASE)


class ChartType(StrEnum):
    TIMESERIES = "timeseries"
    BAR = "bar"
    TABLE = "table"
    NUMBER = "number"
    FUNNEL = "funnel"


class ColumnFormat(StrEnum):
    """How the page shows a numeric column (other numbers: in full, with digit grouping)."""

    CURRENCY = "currency"  # the definition's currency, two decimals
    PERCENT = "percent"  # the value is already in percent (50.0 -> 50.0 %)
    SECONDS = "seconds"
    MILLISECONDS = "milliseconds"
    PER_SECOND = "per_second"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _one_read_only_query(sql: str) -> str:
    """``sql`` if it is one read-only query over {db}'s tables with only the bound parameters, stripped; else
    ValueError saying what is wrong."""
    if not _READ_ONLY_START.match(sql):
        raise ValueError("must be a single SELECT (or WITH ... SELECT) query")
    if ";" in sql.strip().rstrip(";"):
        raise ValueError("must be a single statement (no ';' inside)")
    if "{db}" not in sql:
        raise ValueError("must read the rtap tables through {db}.<table>")
    for match in PARAMETER.finditer(sql):
        name, type_ = match["name"], match["type"].replace(" ", "")
        if name in SETTING_PARAMETERS:
            if type_ != SETTING_PARAMETERS[name]:
                raise ValueError(f"parameter {{{name}}} must be a {SETTING_PARAMETERS[name]}, not {match['type']}")
            continue
        if name not in TIME_PARAMETERS:
            known = ", ".join(f"{{{n}}}" for n in sorted(TIME_PARAMETERS | SETTING_PARAMETERS.keys()))
            raise ValueError(f"unknown parameter {{{name}}}: only {known} are bound")
        if not type_.startswith("DateTime64("):
            raise ValueError(f"parameter {{{name}}} must be a DateTime64, not {match['type']}")
    return sql.strip().rstrip(";").strip()


def _parameters(sql: str) -> frozenset[str]:
    return frozenset(match["name"] for match in PARAMETER.finditer(sql))


class EmptyUntil(_Strict):
    """When a panel with no rows is not yet able to have any (nothing is wrong): ``sql`` counts what its rows need
    over the same range (one row, one number; 0 = nothing yet), ``note`` says so to the viewer and to
    ``rtap validate``. Run only when the panel came back empty."""

    sql: Annotated[str, Field(min_length=1)]
    note: Annotated[str, Field(min_length=1, max_length=200)]

    _sql_is_one_read_only_query = field_validator("sql")(_one_read_only_query)

    @property
    def parameters(self) -> frozenset[str]:
        return _parameters(self.sql)


class Panel(_Strict):
    """One chart: its query, how it is drawn, how often it is re-queried and how wide it is."""

    id: Annotated[str, Field(pattern=_IDENTIFIER, max_length=64)]
    title: Annotated[str, Field(min_length=1, max_length=120)]
    sql: Annotated[str, Field(min_length=1)]
    chart: ChartType
    refresh_seconds: Annotated[int, Field(ge=1, le=3600)]
    # Layout on a 12-column grid; height in grid rows (one row is a number tile's height).
    width: Annotated[int, Field(ge=1, le=12)] = 6
    height: Annotated[int, Field(ge=1, le=4)] = 1
    # Timeseries only: the bucket width, so the page can draw the newest, still-filling bucket as open.
    bucket_seconds: Annotated[int | None, Field(ge=1, le=86_400)] = None
    formats: dict[Annotated[str, Field(pattern=_COLUMN)], ColumnFormat] = Field(default_factory=dict)
    empty_until: EmptyUntil | None = None

    _sql_is_one_read_only_query = field_validator("sql")(_one_read_only_query)

    @model_validator(mode="after")
    def _buckets_are_for_time_series(self) -> Panel:
        if self.bucket_seconds is not None and self.chart is not ChartType.TIMESERIES:
            raise ValueError(f"bucket_seconds is for timeseries panels, not {self.chart.value}")
        return self

    @property
    def parameters(self) -> frozenset[str]:
        """The parameters this panel's SQL uses (a panel may be range-independent)."""
        return _parameters(self.sql)


class Dashboard(_Strict):
    id: Annotated[str, Field(pattern=_IDENTIFIER, max_length=64)]
    title: Annotated[str, Field(min_length=1, max_length=120)]
    description: str = ""
    # The range the page opens with, and the fixed range Metabase cards use.
    default_range_minutes: Annotated[int, Field(ge=1, le=7 * 24 * 60)] = 60
    panels: Annotated[list[Panel], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique_panel_ids(self) -> Dashboard:
        _reject_duplicates([panel.id for panel in self.panels], "panel id")
        return self


class Definition(_Strict):
    # ISO 4217: what money columns (format: currency) are shown in.
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    dashboards: Annotated[list[Dashboard], Field(min_length=1)]

    @model_validator(mode="after")
    def _globally_unique_ids(self) -> Definition:
        # Panel ids are global: the API addresses a panel as /api/panels/{id} without its dashboard.
        _reject_duplicates([d.id for d in self.dashboards], "dashboard id")
        _reject_duplicates([p.id for d in self.dashboards for p in d.panels], "panel id")
        # Titles too: Metabase cards are upserted by name.
        _reject_duplicates([p.title for d in self.dashboards for p in d.panels], "panel title")
        _reject_duplicates([d.title for d in self.dashboards], "dashboard title")
        return self

    def panel(self, panel_id: str) -> Panel | None:
        return self.panels_by_id().get(panel_id)

    def panels_by_id(self) -> dict[str, Panel]:
        return {panel.id: panel for dashboard in self.dashboards for panel in dashboard.panels}


def _reject_duplicates(ids: list[str], what: str) -> None:
    seen: set[str] = set()
    for item in ids:
        if item in seen:
            raise ValueError(f"duplicate {what} {item!r}")
        seen.add(item)


def _location(loc: tuple[int | str, ...]) -> str:
    """Pydantic's error location as a path a person would write: ``dashboards[0].panels[3].chart``."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "definition"


def parse_definition(data: Any, source: str = "dashboards definition") -> Definition:
    """Validate already-parsed YAML; raise ConfigError naming the first bad field."""
    try:
        return Definition.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "enum":
            message = f"must be one of {', '.join(chart.value for chart in ChartType)}"
        raise ConfigError(f"{source}: {_location(first['loc'])}: {message}") from exc


def load_definition(path: Path | None = None) -> Definition:
    """Load ``path``, or the packaged ``dashboards.yaml`` when ``path`` is None."""
    if path is None:
        text = (resources.files("rtap.dashboard") / "dashboards.yaml").read_text(encoding="utf-8")
        source = "dashboards.yaml"
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read dashboards definition {path}: {exc.strerror}") from exc
        source = str(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {' '.join(str(exc).split())}") from exc
    return parse_definition(data, source)
