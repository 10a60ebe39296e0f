"""The contract as Spark: typed schema and validation rules of a valid event, derived from the JSON Schema.

Records are parsed once into a VARIANT (``try_parse_json``), then every property of the schema becomes a
typed column and every JSON Schema keyword a SQL predicate, all evaluated in the JVM: no Python UDF sits in
the hot path. The whole plan is SQL text built once per set of limits and cached: the job builds a new
DataFrame every micro-batch, and composing it from thousands of Column objects (one py4j call each) cost
about a second per batch. The rules mirror ``fastjsonschema`` on the same schema; ``tests/unit/contract`` runs both over
generated records and fails on any disagreement, so neither can drift from the file.

Rules beyond the JSON Schema (they need the Kafka record, which the schema cannot see):
- a payload larger than ``max_record_bytes`` is refused before parsing;
- ``event_time`` must lie between 1970-01-01 and the Kafka record timestamp plus ``max_future_skew_s``
  (a clock far in the future would otherwise drag the watermark and make every later event "late").
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql.types import (
    DataType,
    DecimalType,
    IntegerType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from rtap.contract.model import (
    FORMAT_PATTERNS,
    PRICE_PRECISION,
    PRICE_SCALE,
    ContractField,
    contract_fields,
    load_schema,
    strict_pattern,
)

_SQL_TYPE = {"string": "string", "integer": "int", "number": f"decimal({PRICE_PRECISION},{PRICE_SCALE})"}


def spark_type(field: ContractField) -> DataType:
    """The Spark type of a contract field in a normalised event."""
    if field.format == "date-time":
        return TimestampType()
    if field.json_type == "integer":
        return IntegerType()
    if field.json_type == "number":
        return DecimalType(PRICE_PRECISION, PRICE_SCALE)
    return StringType()


def event_schema() -> StructType:
    """Schema of a valid, normalised event: the contract's fields in schema order."""
    return StructType([StructField(f.name, spark_type(f), nullable=not f.required) for f in contract_fields()])


@dataclass(frozen=True)
class _Rule:
    broken: str  # SQL predicate
    reason: str  # SQL expression of the reason


@dataclass(frozen=True)
class _Plan:
    """The SQL of each projection of :func:`validate_records` (see there)."""

    parse: str
    extract: tuple[str, ...]
    kinds: tuple[str, ...]
    present: tuple[str, ...]
    outputs: tuple[str, ...]
    error: str


def _str(text: str) -> str:
    """A SQL string literal of ``text`` (Spark unescapes backslashes in literals, so they are doubled)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _literal(value: Any) -> str:
    return _str(value) if isinstance(value, str) else str(value)


def _lit_list(values: tuple[Any, ...]) -> str:
    return "[" + ", ".join(str(v) for v in values) + "]"


def _first_broken(rules: list[_Rule]) -> str:
    """The reason of the first broken rule, NULL when none is (a NULL predicate counts as not broken)."""
    return "CASE " + " ".join(f"WHEN {r.broken} THEN {r.reason}" for r in rules) + " END"


def _field_rules(field: ContractField, spec: dict[str, Any]) -> list[_Rule]:
    """The rules that can break one field, in evaluation order (JSON Schema keyword order).

    ``__r.<name>`` is the raw VARIANT (NULL when absent, a VOID variant for JSON null), ``__k_<name>`` its
    JSON type as ``schema_of_variant`` names it, ``__t.<name>`` the value cast to the field's SQL type.
    """
    name = field.name
    raw, kind, typed, present = f"__r.{name}", f"__k_{name}", f"__t.{name}", f"__p_{name}"
    rules: list[_Rule] = []
    if field.required:
        rules.append(_Rule(f"NOT {present}", _str(f"{name}: required field missing or null")))
    if field.json_type == "string":
        type_ok = f"{kind} = 'STRING'"
    else:
        type_ok = f"({kind} = 'BIGINT' OR startswith({kind}, 'DECIMAL') OR {kind} = 'DOUBLE')"
        if field.json_type == "integer":
            as_double = f"try_variant_get({raw}, '$', 'double')"
            type_ok = f"({type_ok} AND {as_double} = floor({as_double}))"
    got = f"concat({_str(f'{name}: expected {field.json_type}, got ')}, lower({kind}))"
    rules.append(_Rule(f"{present} AND NOT {type_ok}", got))
    if field.json_type != "string":
        rules.append(_Rule(f"{present} AND {typed} IS NULL", _str(f"{name}: number out of range")))
    if field.enum is not None:
        allowed = ", ".join(_literal(v) for v in field.enum)
        rules.append(
            _Rule(f"{present} AND NOT {typed} IN ({allowed})", _str(f"{name}: must be one of {_lit_list(field.enum)}"))
        )
    if field.format:
        formats = field.format.split("|")
        any_match = " OR ".join(f"{typed} RLIKE {_str(FORMAT_PATTERNS[fmt])}" for fmt in formats)
        rules.append(_Rule(f"{present} AND NOT ({any_match})", _str(f"{name}: not a valid {' or '.join(formats)}")))
    if "pattern" in spec:
        rules.append(
            _Rule(
                f"{present} AND NOT {typed} RLIKE {_str(strict_pattern(spec['pattern']))}",
                _str(f"{name}: does not match pattern"),
            )
        )
    if "minLength" in spec:
        short = f"{present} AND char_length({typed}) < {spec['minLength']}"
        rules.append(_Rule(short, _str(f"{name}: shorter than {spec['minLength']}")))
    if "maxLength" in spec:
        long = f"{present} AND char_length({typed}) > {spec['maxLength']}"
        rules.append(_Rule(long, _str(f"{name}: longer than {spec['maxLength']}")))
    # Bounds apply to the number as sent, like JSON Schema: the typed value is already rounded to the
    # column's scale (-3e-35 would become 0 and pass "minimum: 0").
    sent = f"try_variant_get({raw}, '$', 'double')"
    if "minimum" in spec:
        rules.append(_Rule(f"{present} AND {sent} < {spec['minimum']}", _str(f"{name}: below {spec['minimum']}")))
    if "maximum" in spec:
        rules.append(_Rule(f"{present} AND {sent} > {spec['maximum']}", _str(f"{name}: above {spec['maximum']}")))
    if field.format == "date-time":
        rules.append(_Rule(f"{present} AND __ts_{name} IS NULL", _str(f"{name}: not a valid date-time")))
    return rules


def _conditional_rules(schema: dict[str, Any]) -> list[_Rule]:
    """``allOf: [{if: {properties: {X: {const: V}}}, then: {required: [...]}}]`` as rules."""
    rules: list[_Rule] = []
    for clause in schema.get("allOf", []):
        ((field, cond),) = clause["if"]["properties"].items()
        applies = f"__t.{field} = {_literal(cond['const'])}"
        for needed in clause["then"].get("required", []):
            reason = _str(f"{needed}: required when {field} is {cond['const']}")
            rules.append(_Rule(f"{applies} AND __t.{needed} IS NULL", reason))
    return rules


@cache
def _plan(value: str, record_timestamp: str, max_record_bytes: int, max_future_skew_s: float) -> _Plan:
    schema = load_schema()
    fields = contract_fields()
    payload = _ident(value)
    size = f"octet_length({payload})"
    parse = f"try_parse_json(CASE WHEN {size} <= {max_record_bytes} THEN CAST({payload} AS STRING) END) AS __doc"
    # One walk over the object per struct instead of a JSON path lookup per field; a document that is not
    # an object casts to NULL. The raw struct keeps each value's JSON type, the typed one converts it.
    raw = ", ".join(f"{f.name} variant" for f in fields)
    typed = ", ".join(f"{f.name} {_SQL_TYPE[f.json_type]}" for f in fields)
    extract = (
        f"try_variant_get(__doc, '$', 'struct<{raw}>') AS __r",
        f"try_variant_get(__doc, '$', 'struct<{typed}>') AS __t",
    )
    kinds: list[str] = []
    for f in fields:
        kinds.append(f"schema_of_variant(__r.{f.name}) AS __k_{f.name}")
        if f.format == "date-time":
            # Millisecond precision, like the warehouse's DateTime64(3) and the Python validator. RFC 3339 allows
            # a lower-case "t" and "z", which Spark's cast refuses: upper() changes nothing else in a date-time.
            kinds.append(f"date_trunc('millisecond', try_cast(upper(__t.{f.name}) AS timestamp)) AS __ts_{f.name}")
    # JSON null is a VOID variant, absent is SQL NULL: both are "not present".
    present = tuple(f"__r.{f.name} IS NOT NULL AND __k_{f.name} != 'VOID' AS __p_{f.name}" for f in fields)

    document_rules = [
        _Rule(f"{payload} IS NULL", _str("empty record")),
        _Rule(f"{size} > {max_record_bytes}", f"concat('record too large: ', CAST({size} AS STRING), ' bytes')"),
        # Spark would decode broken UTF-8 with U+FFFD replacements and accept the event: lossy, and RFC 8259
        # (like the Python validator) refuses it.
        _Rule(f"NOT is_valid_utf8({payload})", _str("invalid JSON (not UTF-8)")),
        _Rule("__doc IS NULL", _str("invalid JSON")),
        _Rule("__r IS NULL", _str("not a JSON object")),
    ]
    skew_ms = int(max_future_skew_s * 1000)
    late_rules = [
        *_conditional_rules(schema),
        _Rule(
            f"__ts_event_time < CAST('1970-01-01' AS TIMESTAMP)"
            f" OR __ts_event_time > {_ident(record_timestamp)} + INTERVAL {skew_ms} MILLISECONDS",
            _str(f"event_time: outside 1970-01-01 .. record timestamp + {max_future_skew_s:g}s"),
        ),
    ]
    per_field = []
    for f in fields:
        spec = schema["properties"][f.name]
        per_field.append(_first_broken(_field_rules(f, spec if "anyOf" not in spec else {})))
    reasons = [_first_broken(document_rules), *per_field, _first_broken(late_rules)]
    outputs = tuple(
        f"__ts_{f.name} AS {f.name}" if f.format == "date-time" else f"__t.{f.name} AS {f.name}" for f in fields
    )
    return _Plan(parse, extract, tuple(kinds), present, outputs, f"coalesce({', '.join(reasons)}) AS error")


def validate_records(
    records: DataFrame,
    *,
    value: str,
    record_timestamp: str,
    max_record_bytes: int,
    max_future_skew_s: float,
) -> DataFrame:
    """Add a typed column per contract field and ``error`` (NULL when valid) to a DataFrame of payloads.

    Staged projections evaluate every intermediate value (parsed document, the two structs, JSON types)
    once; the SQL text of each stage is cached per set of limits, so a micro-batch pays only Spark's
    analysis of it.
    """
    plan = _plan(value, record_timestamp, max_record_bytes, max_future_skew_s)
    original = [_ident(c) for c in records.columns]
    return (
        records.selectExpr("*", plan.parse)
        .selectExpr("*", *plan.extract)
        .selectExpr("*", *plan.kinds)
        .selectExpr("*", *plan.present)
        .selectExpr(*original, *plan.outputs, plan.error)
    )
