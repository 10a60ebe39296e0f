"""The contract as Spark: typed schema and validation rules of a valid event, derived from the JSON Schema.

Records are parsed once into a VARIANT (``try_parse_json``), then every property of the schema becomes a
typed column and every JSON Schema keyword a SQL predicate, all evaluated in the JVM: no Python UDF sits in
the hot path. The rules mirror ``fastjsonschema`` on the same schema; ``tests/unit/contract`` runs both over
generated records and fails on any disagreement, so neither can drift from the file.

Rules beyond the JSON Schema (they need the Kafka record, which the schema cannot see):
- a payload larger than ``max_record_bytes`` is refused before parsing;
- ``event_time`` must lie between 1970-01-01 and the Kafka record timestamp plus ``max_future_skew_s``
  (a clock far in the future would otherwise drag the watermark and make every later event "late").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
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
    broken: Column
    reason: Column


def _lit_list(values: tuple[Any, ...]) -> str:
    return "[" + ", ".join(str(v) for v in values) + "]"


def _first_broken(rules: list[_Rule]) -> Column:
    """The reason of the first broken rule, NULL when none is (a short CASE chain)."""
    error: Column = F.lit(None).cast("string")
    for rule in reversed(rules):
        error = F.when(rule.broken, rule.reason).otherwise(error)
    return error


def _raw(name: str) -> Column:
    return F.col(f"__v_{name}")


def _kind(name: str) -> Column:
    return F.col(f"__k_{name}")


def _typed(name: str) -> Column:
    return F.col(f"__t_{name}")


def _field_rules(field: ContractField, spec: dict[str, Any]) -> list[_Rule]:
    """The rules that can break one field, in evaluation order (JSON Schema keyword order)."""
    name = field.name
    raw, kind, typed = _raw(name), _kind(name), _typed(name)
    present = raw.isNotNull() & (kind != F.lit("VOID"))  # JSON null is a VOID variant
    rules: list[_Rule] = []
    if field.required:
        rules.append(_Rule(~present, F.lit(f"{name}: required field missing or null")))
    if field.json_type == "string":
        type_ok = kind == F.lit("STRING")
    else:
        type_ok = (kind == F.lit("BIGINT")) | kind.startswith("DECIMAL") | (kind == F.lit("DOUBLE"))
        if field.json_type == "integer":
            as_double = F.expr(f"try_variant_get(__v_{name}, '$', 'double')")
            type_ok = type_ok & (as_double == F.floor(as_double))
    rules.append(_Rule(present & ~type_ok, F.concat(F.lit(f"{name}: expected {field.json_type}, got "), F.lower(kind))))
    if field.json_type != "string":
        rules.append(_Rule(present & typed.isNull(), F.lit(f"{name}: number out of range")))
    if field.enum is not None:
        rules.append(
            _Rule(present & ~typed.isin(*field.enum), F.lit(f"{name}: must be one of {_lit_list(field.enum)}"))
        )
    if field.format:
        formats = field.format.split("|")
        any_match = typed.rlike(FORMAT_PATTERNS[formats[0]])
        for fmt in formats[1:]:
            any_match = any_match | typed.rlike(FORMAT_PATTERNS[fmt])
        rules.append(_Rule(present & ~any_match, F.lit(f"{name}: not a valid {' or '.join(formats)}")))
    if "pattern" in spec:
        rules.append(_Rule(present & ~typed.rlike(spec["pattern"]), F.lit(f"{name}: does not match pattern")))
    if "minLength" in spec:
        short = F.char_length(typed) < F.lit(spec["minLength"])
        rules.append(_Rule(present & short, F.lit(f"{name}: shorter than {spec['minLength']}")))
    if "maxLength" in spec:
        long = F.char_length(typed) > F.lit(spec["maxLength"])
        rules.append(_Rule(present & long, F.lit(f"{name}: longer than {spec['maxLength']}")))
    if "minimum" in spec:
        rules.append(_Rule(present & (typed < F.lit(spec["minimum"])), F.lit(f"{name}: below {spec['minimum']}")))
    if "maximum" in spec:
        rules.append(_Rule(present & (typed > F.lit(spec["maximum"])), F.lit(f"{name}: above {spec['maximum']}")))
    if field.format == "date-time":
        rules.append(_Rule(present & F.col(f"__ts_{name}").isNull(), F.lit(f"{name}: not a valid date-time")))
    return rules


def _conditional_rules(schema: dict[str, Any]) -> list[_Rule]:
    """``allOf: [{if: {properties: {X: {const: V}}}, then: {required: [...]}}]`` as rules."""
    rules: list[_Rule] = []
    for clause in schema.get("allOf", []):
        ((field, cond),) = clause["if"]["properties"].items()
        applies = _typed(field) == F.lit(cond["const"])
        for needed in clause["then"].get("required", []):
            missing = _typed(needed).isNull()
            rules.append(_Rule(applies & missing, F.lit(f"{needed}: required when {field} is {cond['const']}")))
    return rules


def validate_records(
    records: DataFrame,
    *,
    value: str,
    record_timestamp: str,
    max_record_bytes: int,
    max_future_skew_s: float,
) -> DataFrame:
    """Add a typed column per contract field and ``error`` (NULL when valid) to a DataFrame of payloads.

    Staged projections keep each generated method small (one nested CASE over every rule exceeds the JVM's
    64 KB method limit and silently falls back to interpretation) and evaluate every JSON path once.
    """
    schema = load_schema()
    fields = contract_fields()
    payload = F.col(value)
    size = F.octet_length(payload)
    parsed = records.select(
        "*", F.try_parse_json(F.when(size <= max_record_bytes, payload.cast("string"))).alias("__doc")
    )
    extracted = parsed.select(
        "*", *(F.expr(f"variant_get(__doc, '$.{f.name}')").alias(f"__v_{f.name}") for f in fields)
    )
    typed_columns = []
    for f in fields:
        typed_columns.append(F.schema_of_variant(_raw(f.name)).alias(f"__k_{f.name}"))
        typed_columns.append(
            F.expr(f"try_variant_get(__v_{f.name}, '$', '{_SQL_TYPE[f.json_type]}')").alias(f"__t_{f.name}")
        )
        if f.format == "date-time":
            # Millisecond precision, like the warehouse's DateTime64(3) and the Python validator.
            parsed_time = F.expr(f"try_cast(try_variant_get(__v_{f.name}, '$', 'string') AS timestamp)")
            typed_columns.append(F.date_trunc("millisecond", parsed_time).alias(f"__ts_{f.name}"))
    typed = extracted.select("*", *typed_columns)

    document_rules = [
        _Rule(payload.isNull(), F.lit("empty record")),
        _Rule(
            size > F.lit(max_record_bytes),
            F.concat(F.lit("record too large: "), size.cast("string"), F.lit(" bytes")),
        ),
        _Rule(F.col("__doc").isNull(), F.lit("invalid JSON")),
        _Rule(~F.schema_of_variant(F.col("__doc")).startswith("OBJECT"), F.lit("not a JSON object")),
    ]
    event_time = F.col("__ts_event_time")
    skew = F.expr(f"INTERVAL {int(max_future_skew_s * 1000)} MILLISECONDS")
    late_rules = [
        *_conditional_rules(schema),
        _Rule(
            (event_time < F.lit("1970-01-01").cast("timestamp")) | (event_time > F.col(record_timestamp) + skew),
            F.lit(f"event_time: outside 1970-01-01 .. record timestamp + {max_future_skew_s:g}s"),
        ),
    ]
    per_field = [
        _first_broken(
            _field_rules(f, schema["properties"][f.name] if "anyOf" not in schema["properties"][f.name] else {})
        ).alias(f"__e_{f.name}")
        for f in fields
    ]
    checked = typed.select(
        "*",
        _first_broken(document_rules).alias("__e_doc"),
        *per_field,
        _first_broken(late_rules).alias("__e_rules"),
    )
    error = F.coalesce(F.col("__e_doc"), *(F.col(f"__e_{f.name}") for f in fields), F.col("__e_rules"))
    outputs = [F.col(f"__ts_{f.name}" if f.format == "date-time" else f"__t_{f.name}").alias(f.name) for f in fields]
    original = [c for c in records.columns]
    return checked.select(*original, *outputs, error.alias("error"))
