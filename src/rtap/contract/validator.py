"""Kafka payloads -> typed contract columns and, for each invalid one, the reason: at the cost of parsing.

The stream job validates every record here, in Spark's Python workers (``rtap.stream.transforms``). Both
paths below are generated from the JSON Schema when a :class:`RecordValidator` is built:

- **fast**: msgspec decodes the payload into a Struct whose field types carry the schema's keywords (type,
  enum, minLength/maxLength, pattern, format as a pattern, minimum/maximum) as msgspec constraints, and the
  rules msgspec cannot express (conditional required fields, event_time's bounds) are then checked
  vectorised over the whole batch. A record that passes all of it is valid.
- **exact**: a record the fast path refuses is parsed again with orjson and walked through the rules in
  schema order (:class:`_Rules`); the first broken rule is its reason. It may also turn out valid: msgspec is
  stricter than JSON Schema in a few places (an integer written ``1.0``, a number too large for int64).

The fast path only accepts what every rule accepts, so the verdict never depends on which path a record
took; what it buys is speed, since invalid records are rare (measured on generated traffic:
``bench/bench_classify.py``). ``tests/unit/contract`` checks both paths against fastjsonschema (the
independent implementation behind :func:`rtap.contract.validate_event`) on generated records.

A UUID is one value however it is spelled: every field of format ``uuid`` (``event_id``) comes out in its
canonical lower-case form, so that copies of an event written in upper case (Swift's ``UUID().uuidString``),
lower case or mixed case are one id to the deduplication, in a batch and against stored events alike.

Rules beyond the JSON Schema, because they need the Kafka record:
- a payload larger than ``max_record_bytes`` is refused before parsing;
- ``event_time`` must lie between 1970-01-01 and the Kafka record's timestamp plus ``max_future_skew_s``
  (a clock far in the future would otherwise drag the watermark and make every later event "late").
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from operator import attrgetter
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from rtap.contract.model import (
    FORMAT_PATTERNS,
    FORMAT_SOURCES,
    NATIVE_FORMAT,
    PRICE_PRECISION,
    PRICE_SCALE,
    ContractField,
    format_fields,
    load_format_schema,
    parse_rfc3339,
    strict_pattern,
)
from rtap.errors import ContractError

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
_PRICE_QUANTUM = Decimal(1).scaleb(-PRICE_SCALE)
_DECIMAL_LIMIT = Decimal(10) ** (PRICE_PRECISION - PRICE_SCALE)
# The form rtap's own producer writes (UTC, 'Z', at most milliseconds): parsed vectorised by Arrow. Any
# other valid RFC 3339 spelling (offsets, more digits, 't'/'z', a space) is parsed per record.
_CANONICAL_TIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$"
_KEYWORDS = {"type", "enum", "format", "pattern", "minLength", "maxLength", "minimum", "maximum", "description"}


def arrow_type(field: ContractField) -> pa.DataType:
    """The Arrow type of a contract field in a validated, normalised record."""
    if field.format == "date-time":
        return pa.timestamp("ms", tz="UTC")
    if field.json_type == "integer":
        return pa.int32()
    if field.json_type == "number":
        return pa.decimal128(PRICE_PRECISION, PRICE_SCALE)
    return pa.string()


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, dict) else "array"


def to_decimal(value: float | int) -> Decimal | None:
    """A JSON number as the warehouse's Decimal(18, 6), like the reference validator; None when it does not fit."""
    try:
        quantized = Decimal(str(value)).quantize(_PRICE_QUANTUM)
    except InvalidOperation:
        return None
    return quantized if abs(quantized) < _DECIMAL_LIMIT else None


@dataclass(frozen=True)
class _Field:
    """One property with the keywords that constrain it (``anyOf`` branches contribute only their formats)."""

    spec: ContractField
    raw_pattern: str | None  # as written in the schema (ECMA-262), for RE2
    pattern: re.Pattern[str] | None
    formats: tuple[str, ...]
    format_regex: re.Pattern[str] | None
    min_length: int | None
    max_length: int | None
    minimum: float | None
    maximum: float | None

    @property
    def name(self) -> str:
        return self.spec.name


def _fields(schema: dict[str, Any], contract: tuple[ContractField, ...]) -> tuple[_Field, ...]:
    out = []
    for field in contract:
        spec = schema["properties"][field.name]
        unknown = set(spec) - _KEYWORDS - {"anyOf"}
        if unknown:
            raise ContractError(f"{field.name}: the validator does not support {sorted(unknown)}")
        plain = {} if "anyOf" in spec else spec
        formats = tuple(field.format.split("|")) if field.format else ()
        alternatives = "|".join(f"(?:{FORMAT_PATTERNS[f]})" for f in formats)
        out.append(
            _Field(
                spec=field,
                raw_pattern=plain.get("pattern"),
                pattern=re.compile(strict_pattern(plain["pattern"]), re.ASCII) if "pattern" in plain else None,
                formats=formats,
                format_regex=re.compile(alternatives, re.ASCII) if formats else None,
                min_length=plain.get("minLength"),
                max_length=plain.get("maxLength"),
                minimum=plain.get("minimum"),
                maximum=plain.get("maximum"),
            )
        )
    return tuple(out)


def _conditions(schema: dict[str, Any]) -> tuple[tuple[str, Any, tuple[str, ...]], ...]:
    """``allOf: [{if: {properties: {X: {const: V}}}, then: {required: [...]}}]`` as (X, V, required)."""
    out = []
    for clause in schema.get("allOf", []):
        ((name, cond),) = clause["if"]["properties"].items()
        out.append((name, cond["const"], tuple(clause["then"].get("required", []))))
    return tuple(out)


class _Rules:
    """The exact path: every rule of the contract in evaluation order, on a document parsed by orjson.

    The order (document, then each field in schema order with its keywords in schema order, then the
    conditional and the event-time rules) decides which reason a record with several faults gets.
    """

    def __init__(
        self, fields: tuple[_Field, ...], conditions: tuple[tuple[str, Any, tuple[str, ...]], ...], skew_s: float
    ) -> None:
        self._fields = fields
        self._conditions = conditions
        self._skew_ms = int(skew_s * 1000)
        self._skew_s = skew_s

    def check(self, payload: bytes | None, record_ms: int, max_bytes: int) -> tuple[str | None, dict[str, Any]]:
        """(reason, normalised values): reason None means valid."""
        if payload is None:
            return "empty record", {}
        if len(payload) > max_bytes:
            return f"record too large: {len(payload)} bytes", {}
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError:
            return "invalid JSON (not UTF-8)", {}
        try:
            document = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:  # orjson's reason says where, e.g. a number beyond a double's range
            return f"invalid JSON ({exc})", {}
        if not isinstance(document, dict):
            return "not a JSON object", {}
        values: dict[str, Any] = {}
        for field in self._fields:
            reason, value = self._field(field, document.get(field.name))
            if reason is not None:
                return f"{field.name}: {reason}", {}
            values[field.name] = value
        for name, const, required in self._conditions:
            if values.get(name) == const:
                for needed in required:
                    if values.get(needed) is None:
                        return f"{needed}: required when {name} is {const}", {}
        moment = values.get("event_time")
        if moment is not None and not 0 <= moment.timestamp() * 1000 <= record_ms + self._skew_ms:
            return f"event_time: outside 1970-01-01 .. record timestamp + {self._skew_s:g}s", {}
        return None, values

    @staticmethod
    def _field(field: _Field, value: Any) -> tuple[str | None, Any]:
        spec = field.spec
        if value is None:
            return ("required field missing or null", None) if spec.required else (None, None)
        kind = _json_kind(value)
        if spec.json_type == "string":
            if kind != "string":
                return f"expected string, got {kind}", None
        elif kind != "number" or (spec.json_type == "integer" and isinstance(value, float) and not value.is_integer()):
            return f"expected {spec.json_type}, got {kind}", None
        typed: Any = value
        if spec.json_type == "integer":
            typed = int(value)
            if not INT32_MIN <= typed <= INT32_MAX:
                return "number out of range", None
        elif spec.json_type == "number":
            typed = to_decimal(value)
            if typed is None:
                return "number out of range", None
        if spec.enum is not None and typed not in spec.enum:
            return f"must be one of [{', '.join(str(v) for v in spec.enum)}]", None
        if field.format_regex is not None and not field.format_regex.search(value):
            return f"not a valid {' or '.join(field.formats)}", None
        if field.pattern is not None and not field.pattern.search(value):
            return "does not match pattern", None
        if field.min_length is not None and len(value) < field.min_length:
            return f"shorter than {field.min_length}", None
        if field.max_length is not None and len(value) > field.max_length:
            return f"longer than {field.max_length}", None
        if field.minimum is not None and float(value) < field.minimum:
            return f"below {field.minimum:g}", None
        if field.maximum is not None and float(value) > field.maximum:
            return f"above {field.maximum:g}", None
        if spec.format == "date-time":
            typed = parse_rfc3339(value)
            if typed is None:
                return "not a valid date-time", None
        return None, typed


def _msgspec_type(field: _Field) -> Any:
    """The field as a msgspec type: every keyword but pattern and format, which :meth:`RecordValidator.validate`
    checks vectorised over the batch (RE2 through Arrow: ~60 ns a value against ~1 us for Python's re)."""
    spec = field.spec
    base: Any
    if spec.enum is not None:
        base = Literal[spec.enum]  # type: ignore[valid-type]  # built at run time from the schema
    elif spec.json_type == "string":
        base = Annotated[str, msgspec.Meta(min_length=field.min_length, max_length=field.max_length)]
    elif spec.json_type == "integer":
        low = INT32_MIN if field.minimum is None else max(INT32_MIN, math.ceil(field.minimum))
        high = INT32_MAX if field.maximum is None else min(INT32_MAX, math.floor(field.maximum))
        base = Annotated[int, msgspec.Meta(ge=low, le=high)]
    else:  # number: within the schema's bounds and safely inside Decimal(18, 6)
        limit = float(_DECIMAL_LIMIT) / 2
        low_f = -limit if field.minimum is None else max(-limit, field.minimum)
        high_f = limit if field.maximum is None else min(limit, field.maximum)
        base = Annotated[float, msgspec.Meta(ge=low_f, le=high_f)]
    return base if spec.required else base | None


def _re2(field: _Field) -> list[str]:
    """The field's pattern and format as RE2 regexes for Arrow. RE2's ``$`` is the very end of the text, like
    ECMA-262's, so the schema's patterns are used as written; ``\\d`` is ASCII in RE2, as in ECMA-262 and in
    the exact path (compiled with re.ASCII)."""
    regexes = []
    if field.formats:
        regexes.append("|".join(f"(?:{FORMAT_SOURCES[f]})" for f in field.formats))
    if field.raw_pattern is not None:
        regexes.append(field.raw_pattern)
    return regexes


@dataclass(frozen=True)
class Validated:
    """The outcome for a batch of payloads: one typed Arrow array per contract field, and the reasons."""

    columns: dict[str, pa.Array]
    errors: pa.Array  # string, null where the record is valid

    @property
    def valid(self) -> pa.Array:
        return pc.is_null(self.errors)


class RecordValidator:
    """Validates batches of payloads against one version of a contract (see the module docstring)."""

    def __init__(
        self,
        *,
        max_record_bytes: int,
        max_future_skew_s: float,
        schema: str = NATIVE_FORMAT,
        fast_path: bool = True,
    ) -> None:
        """``schema``: the name of a JSON Schema in ``rtap/contract/schemas`` (contract v1 or a source format).
        ``fast_path=False`` sends every record through the exact rules (tests and benchmarks compare the two)."""
        self.fields = _fields(load_format_schema(schema), format_fields(schema))
        self.types = {f.name: arrow_type(f.spec) for f in self.fields}
        self._max_bytes = max_record_bytes
        self._fast = fast_path
        self._skew_ms = int(max_future_skew_s * 1000)
        self._conditions = _conditions(load_format_schema(schema))
        self._rules = _Rules(self.fields, self._conditions, max_future_skew_s)
        struct = msgspec.defstruct(
            "Record",
            [(f.name, _msgspec_type(f)) if f.spec.required else (f.name, _msgspec_type(f), None) for f in self.fields],
            kw_only=True,
        )
        self._decode: Callable[[bytes], Any] = msgspec.json.Decoder(struct).decode
        self._blank = struct(**{f.name: None for f in self.fields})  # stands in for a record the fast path refused
        self._names = tuple(f.name for f in self.fields)
        self._times = tuple(f.name for f in self.fields if f.spec.format == "date-time")
        self._numbers = tuple(f.name for f in self.fields if f.spec.json_type == "number")
        self._regexes = {f.name: _re2(f) for f in self.fields if f.spec.format != "date-time" and _re2(f)}
        self._uuids = tuple(f.name for f in self.fields if f.spec.format == "uuid")

    def validate(self, payloads: Sequence[bytes | None], record_ms: np.ndarray) -> Validated:
        """Validate ``payloads``; ``record_ms`` holds each Kafka record's timestamp (epoch milliseconds)."""
        count = len(payloads)
        decode, blank = self._decode, self._blank
        max_bytes = self._max_bytes if self._fast else -1  # -1: no payload takes the fast path
        records: list[Any] = []
        slow: list[int] = []
        for index, payload in enumerate(payloads):
            try:
                if payload is None or len(payload) > max_bytes:
                    raise ValueError
                records.append(decode(payload))
            # msgspec.ValidationError is a DecodeError; RecursionError: nesting deeper than msgspec follows
            except (ValueError, RecursionError, msgspec.DecodeError):
                records.append(blank)
                slow.append(index)
        raw = {name: list(map(attrgetter(name), records)) for name in self._names}
        fast_ok = np.ones(count, dtype=bool)
        fast_ok[slow] = False
        columns: dict[str, pa.Array] = {}
        for name in self._names:
            if name in self._times:
                columns[name], bad = self._times_ms(raw[name], fast_ok)
                fast_ok &= ~bad
            elif name in self._numbers:
                columns[name] = pa.array([None if v is None else to_decimal(v) for v in raw[name]], self.types[name])
            else:
                columns[name] = pa.array(raw[name], self.types[name])
                for regex in self._regexes.get(name, ()):
                    fast_ok &= np.asarray(pc.fill_null(pc.match_substring_regex(columns[name], regex), True))
        fast_ok &= ~self._conditions_broken(columns) & ~self._times_out_of_bounds(columns, record_ms)
        errors: list[str | None] = [None] * count
        redo = np.flatnonzero(~fast_ok)
        if len(redo):
            columns = self._exact(payloads, record_ms, redo, columns, errors)
        for name in self._uuids:  # checked as UUIDs above: lower case is their canonical spelling
            columns[name] = pc.utf8_lower(columns[name])
        return Validated(columns, pa.array(errors, pa.string()))

    def _times_ms(self, values: list[Any], fast_ok: np.ndarray) -> tuple[pa.Array, np.ndarray]:
        """A date-time column as epoch-ms timestamps; the mask of rows whose value is no valid date-time."""
        strings = pa.array(values, pa.string())
        canonical = pc.fill_null(pc.match_substring_regex(strings, _CANONICAL_TIME), False)
        millis = np.zeros(len(values), dtype=np.int64)
        bad = np.zeros(len(values), dtype=bool)
        quick = np.asarray(canonical) & fast_ok
        try:
            parsed = pc.cast(pc.filter(strings, pa.array(quick)), pa.timestamp("ms", tz="UTC"))
            millis[quick] = np.asarray(parsed.cast(pa.int64()))
        except pa.ArrowInvalid:  # an impossible date among them (Feb 30): each one on its own below
            quick[:] = False
        for index in np.flatnonzero(fast_ok & ~quick):
            moment = parse_rfc3339(values[index])
            if moment is None:
                bad[index] = True
            else:
                millis[index] = int(moment.timestamp() * 1000)
        present = pc.is_valid(strings)
        arr = pa.array(millis, pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
        return pc.if_else(pc.and_(present, pa.array(~bad)), arr, pa.nulls(len(values), arr.type)), bad

    def _conditions_broken(self, columns: dict[str, pa.Array]) -> np.ndarray:
        broken = pa.array(np.zeros(len(next(iter(columns.values()))), dtype=bool))
        for name, const, required in self._conditions:
            applies = pc.fill_null(pc.equal(columns[name], pa.scalar(const)), False)
            missing = [pc.is_null(columns[n]) for n in required]
            for m in missing:
                broken = pc.or_(broken, pc.and_(applies, m))
        return np.asarray(broken)

    def _times_out_of_bounds(self, columns: dict[str, pa.Array], record_ms: np.ndarray) -> np.ndarray:
        if "event_time" not in columns:
            return np.zeros(len(record_ms), dtype=bool)
        millis = np.asarray(pc.fill_null(columns["event_time"].cast(pa.int64()), 0))
        return (millis < 0) | (millis > record_ms + self._skew_ms)

    def _exact(
        self,
        payloads: Sequence[bytes | None],
        record_ms: np.ndarray,
        redo: np.ndarray,
        columns: dict[str, pa.Array],
        errors: list[str | None],
    ) -> dict[str, pa.Array]:
        """Run the exact rules on rows ``redo``: set their reason, or their values when they are valid."""
        redone: dict[str, list[Any]] = {name: [] for name in self._names}
        for index in redo.tolist():
            reason, values = self._rules.check(payloads[index], int(record_ms[index]), self._max_bytes)
            errors[index] = reason
            for name in self._names:
                redone[name].append(values.get(name))
        mask = np.zeros(len(payloads), dtype=bool)
        mask[redo] = True
        return {
            name: pc.replace_with_mask(column, pa.array(mask), pa.array(redone[name], self.types[name]))
            for name, column in columns.items()
        }


def record_times_ms(timestamps: pa.Array) -> np.ndarray:
    """Kafka record timestamps (Arrow timestamps of any unit) as epoch milliseconds."""
    return np.asarray(pc.fill_null(timestamps.cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64()), 0))


__all__ = ["RecordValidator", "Validated", "arrow_type", "record_times_ms", "to_decimal"]
