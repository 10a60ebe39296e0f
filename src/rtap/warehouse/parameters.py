"""Query parameters (``{name:Type}``) as ClickHouse's escaped text, the form the engine parses them from.

chDB passes parameter values to the engine with ``str()``, which breaks on ``None``, aware datetimes
and lists of strings; the socket channel needs text anyway. This follows clickhouse-connect's
formatting rules (so both backends agree) but keeps fractional seconds, which DateTime64 columns need.
Aware datetimes are converted to UTC wall time: every rtap timestamp column is in UTC.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

# Escaped text format (top level): backslashes and control characters; inside a container the
# value is a quoted literal, so the quote is escaped too.
_TEXT_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"}
_ESCAPE_TEXT = str.maketrans(_TEXT_ESCAPES)
_ESCAPE_LITERAL = str.maketrans({**_TEXT_ESCAPES, "'": "\\'"})


def _datetime_text(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    # Whole seconds stay whole so that a plain DateTime parameter parses too.
    # The year is zero-padded by hand: glibc's strftime("%Y") does not pad years below 1000.
    text = f"{value.year:04d}" + value.strftime("-%m-%d %H:%M:%S")
    return f"{text}.{value.microsecond:06d}" if value.microsecond else text


class ParameterText(str):
    """A parameter already in ClickHouse's escaped text form (e.g. received over the socket channel)."""

    __slots__ = ()


def format_parameter(value: Any, *, top_level: bool = True) -> str:
    """``value`` as ClickHouse parses a query parameter: escaped text at the top, literals inside containers."""
    if isinstance(value, ParameterText) and top_level:
        return str(value)
    if value is None:
        return "\\N" if top_level else "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return format_parameter(value.value, top_level=top_level)
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, datetime):
        text = _datetime_text(value)
    elif isinstance(value, date):
        text = value.isoformat()
    elif isinstance(value, uuid.UUID | ipaddress.IPv4Address | ipaddress.IPv6Address):
        text = str(value)
    elif isinstance(value, bytes | bytearray):
        text = bytes(value).decode("utf-8", errors="surrogateescape")
    elif isinstance(value, list | tuple):
        inner = ", ".join(format_parameter(item, top_level=False) for item in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    elif isinstance(value, Mapping):
        pairs = ", ".join(
            f"{format_parameter(k, top_level=False)}:{format_parameter(v, top_level=False)}" for k, v in value.items()
        )
        return "{" + pairs + "}"
    else:
        text = str(value)
    if top_level:
        return text.translate(_ESCAPE_TEXT)
    return "'" + text.translate(_ESCAPE_LITERAL) + "'"


def format_parameters(parameters: Mapping[str, Any] | None) -> dict[str, str]:
    """Every parameter formatted; an empty dict for none."""
    return {name: format_parameter(value) for name, value in (parameters or {}).items()}
