"""Load the versioned JSON Schema, validate records against it, describe its fields."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

import fastjsonschema
import orjson

from rtap.errors import ContractError

CURRENT_VERSION = 1
# Money is exact: prices are stored as Decimal(PRICE_PRECISION, PRICE_SCALE) in Spark and ClickHouse,
# so revenue sums do not depend on summation order (Float64 sums do, and would not reconcile exactly).
PRICE_PRECISION = 18
PRICE_SCALE = 6

# `$` in Python and Java regexes also matches before a final line break, so "DE\n" would pass "^[A-Z]{2}$"
# and an event_id with a trailing newline would escape deduplication. JSON Schema patterns follow ECMA-262,
# where `$` means the end. END means the very end in both engines; strict_pattern() puts it in place of `$`.
END = r"(?![\s\S])"


def strict_pattern(pattern: str) -> str:
    """``pattern`` with a final ``$`` anchored at the very end of the input (see END)."""
    return pattern[:-1] + END if pattern.endswith("$") and not pattern.endswith("\\$") else pattern


# RFC 3339 date-time: a 'T' (or space, which RFC 3339 allows), seconds, optional fraction, mandatory offset.
RFC3339_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
_RFC3339 = re.compile(strict_pattern(RFC3339_PATTERN), re.ASCII)  # \d is [0-9], as in ECMA-262
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_OCTET = r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
IPV4_PATTERN = rf"^({_OCTET}\.){{3}}{_OCTET}$"
_H16 = r"[0-9a-fA-F]{1,4}"
IPV6_PATTERN = (
    rf"^(({_H16}:){{7}}{_H16}|(({_H16}:){{0,7}}{_H16})?::(({_H16}:){{0,7}}{_H16})?"
    rf"|(({_H16}:){{0,6}}{_H16})?::(({_H16}:){{0,5}}{_H16}:)?({_OCTET}\.){{3}}{_OCTET})$"
)
# The JSON Schema formats the contract uses, as regexes valid in both Python and Java (Spark's rlike), so
# the Python validator and the Spark job accept exactly the same strings.
FORMAT_SOURCES = {"uuid": UUID_PATTERN, "date-time": RFC3339_PATTERN, "ipv4": IPV4_PATTERN, "ipv6": IPV6_PATTERN}
FORMAT_PATTERNS = {name: strict_pattern(pattern) for name, pattern in FORMAT_SOURCES.items()}


NATIVE_FORMAT = f"clickstream-event.v{CURRENT_VERSION}"
# The source formats the stream job reads (rtap.contract.formats: their readers and upcasts onto v1).
LEGACY_FORMAT = "legacy-click.v1"
BROWSER_FORMAT = "browser-event.v1"  # the browser tracker's events, as the collector writes them (rtap.collect)
FORMATS = (NATIVE_FORMAT, LEGACY_FORMAT, BROWSER_FORMAT)


@cache
def load_format_schema(name: str) -> dict[str, Any]:
    """The JSON Schema ``schemas/<name>.json`` as shipped in the package: contract v1 or a source format."""
    path = resources.files("rtap.contract") / "schemas" / f"{name}.json"
    try:
        schema: dict[str, Any] = orjson.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise ContractError(f"no schema {name} in this rtap") from exc
    return schema


def known_format(name: str) -> str:
    """``name`` if rtap has that source format (its schema loads), else a ContractError listing the known ones."""
    if name not in FORMATS:
        raise ContractError(f"unknown source format {name!r} (known: {', '.join(FORMATS)})")
    load_format_schema(name)
    return name


def load_schema(version: int = CURRENT_VERSION) -> dict[str, Any]:
    """The JSON Schema of contract ``version`` as shipped in the package."""
    try:
        return load_format_schema(f"clickstream-event.v{version}")
    except ContractError as exc:
        raise ContractError(f"no contract version {version} in this rtap") from exc


@dataclass(frozen=True)
class ContractField:
    """One top-level property of the contract, flattened for code generation and drift tests."""

    name: str
    json_type: str  # "string" | "number" | "integer"
    required: bool
    nullable: bool
    enum: tuple[Any, ...] | None = None
    format: str | None = None


def _describe(name: str, spec: dict[str, Any], required: bool) -> ContractField:
    if "anyOf" in spec:  # e.g. ip_address: null | ipv4 | ipv6
        branches = spec["anyOf"]
        branch_types = {b["type"] for b in branches}
        formats = sorted(b["format"] for b in branches if "format" in b)
        base = (branch_types - {"null"}).pop()
        return ContractField(name, base, required, "null" in branch_types, None, "|".join(formats) or None)
    types = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
    base = next(t for t in types if t != "null")
    enum = tuple(v for v in spec["enum"] if v is not None) if "enum" in spec else None
    return ContractField(name, base, required, "null" in types, enum, spec.get("format"))


@cache
def format_fields(name: str) -> tuple[ContractField, ...]:
    """The properties of schema ``name`` in schema order."""
    schema = load_format_schema(name)
    required = set(schema["required"])
    return tuple(_describe(n, s, n in required) for n, s in schema["properties"].items())


def contract_fields(version: int = CURRENT_VERSION) -> tuple[ContractField, ...]:
    """The contract's properties in schema order: the column order of Spark and ClickHouse too."""
    load_schema(version)  # the contract's own error for a version rtap does not have
    return format_fields(f"clickstream-event.v{version}")


def _field(name: str) -> ContractField:
    return next(f for f in contract_fields() if f.name == name)


EVENT_TYPES: tuple[str, ...] = _field("event_type").enum or ()
DEVICES: tuple[str, ...] = _field("device").enum or ()
REQUIRED_FIELDS: tuple[str, ...] = tuple(f.name for f in contract_fields() if f.required)


def _strict_patterns(node: Any) -> Any:
    """A copy of a schema whose ``pattern`` keywords end with END instead of ``$``."""
    if isinstance(node, dict):
        return {k: strict_pattern(v) if k == "pattern" else _strict_patterns(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_strict_patterns(v) for v in node]
    return node


def _ascii_matcher(pattern: str) -> Callable[[str], bool]:
    compiled = re.compile(pattern, re.ASCII)
    return lambda value: compiled.search(value) is not None


@cache
def _validator(name: str) -> Any:
    return fastjsonschema.compile(
        _strict_patterns(load_format_schema(name)),
        # Compiled with re.ASCII: JSON Schema patterns are ECMA-262, where \d is [0-9], not any Unicode digit.
        formats={name: _ascii_matcher(pattern) for name, pattern in FORMAT_PATTERNS.items()},
        use_formats=True,
    )


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_rfc3339(value: str) -> datetime | None:
    """An RFC 3339 date-time as an aware UTC datetime truncated to milliseconds (the warehouse's precision);
    None when ``value`` is not one. No range rule: callers decide what is plausible."""
    if not _RFC3339.match(value):
        return None
    try:
        utc = datetime.fromisoformat(value.replace("z", "Z").replace("t", "T")).astimezone(UTC)
    except (ValueError, OverflowError):  # an impossible date; an offset pushing year 1 out of range
        return None
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def parse_event_time(value: str) -> datetime:
    """An RFC 3339 string as an aware UTC datetime (millisecond precision, like the warehouse), not before 1970."""
    utc = parse_rfc3339(value)
    if utc is None:
        raise ContractError("not a valid RFC 3339 date-time", "event_time")
    if utc < EPOCH:  # the stream job's rule too (rtap.contract.validator); its upper bound needs the Kafka record
        raise ContractError("before 1970-01-01", "event_time")
    return utc


def format_event_time(value: datetime) -> str:
    """The canonical wire form rtap writes: UTC, milliseconds, 'Z'."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


# Confluent Schema Registry's wire format: a zero "magic" byte and the schema's id (4 bytes, big-endian) before the
# serialized value. Its JSON Schema serializers (confluent-kafka's JSONSerializer, Java's KafkaJsonSchemaSerializer)
# put the JSON document after it. No JSON text starts with a zero byte, so the header is never mistaken for a payload.
WIRE_HEADER = b"\x00"
WIRE_HEADER_BYTES = 5


def unframed(payload: bytes) -> bytes:
    """``payload`` without a Schema Registry header (:data:`WIRE_HEADER`), or as it is when it has none."""
    return payload[WIRE_HEADER_BYTES:] if len(payload) >= WIRE_HEADER_BYTES and payload[:1] == WIRE_HEADER else payload


def check_document(record: bytes | str | dict[str, Any], name: str) -> dict[str, Any]:
    """``record`` as a JSON object valid against schema ``name`` (fastjsonschema, the reference implementation),
    its UUIDs (``format: uuid``) in lower case, one id however it is spelled, as the job's validator gives them.
    Bytes may carry a Schema Registry header (:func:`unframed`), as the job reads them.

    Raises :class:`ContractError` naming the first broken rule.
    """
    if isinstance(record, (bytes, str)):
        try:
            record = orjson.loads(unframed(record) if isinstance(record, bytes) else record)
        except orjson.JSONDecodeError as exc:
            raise ContractError(f"invalid JSON ({exc})") from exc
    if not isinstance(record, dict):
        raise ContractError("not a JSON object")
    try:
        _validator(name)(record)
    except fastjsonschema.JsonSchemaValueException as exc:
        field = exc.path[1] if len(exc.path) > 1 else None
        raise ContractError(exc.message, field) from exc
    uuids = {
        f.name: v.lower()
        for f in format_fields(name)
        if f.format == "uuid" and isinstance(v := record.get(f.name), str)
    }
    return {**record, **uuids}


def validate_event(record: bytes | str | dict[str, Any], version: int = CURRENT_VERSION) -> dict[str, Any]:
    """Validate one record and return it normalised (UTC event_time, Decimal price, lower-case event_id,
    contract fields only).

    Raises :class:`ContractError` naming the first broken rule. Unknown fields are dropped, not refused.
    """
    load_schema(version)
    record = check_document(record, f"clickstream-event.v{version}")
    event = {f.name: record.get(f.name) for f in contract_fields(version)}
    event["event_time"] = parse_event_time(record["event_time"])
    if event["price"] is not None:
        event["price"] = Decimal(str(event["price"])).quantize(Decimal(1).scaleb(-PRICE_SCALE))
    return event
