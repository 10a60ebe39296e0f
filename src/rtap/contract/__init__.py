"""The event contract: a versioned JSON Schema and everything derived from it.

``schemas/clickstream-event.v1.json`` is the single source of truth. This package loads it, validates
records against it (``validator``: the stream job's validator, generated from the schema; ``model``: the
reference, fastjsonschema on the same file, for the producer side, tests and ``rtap dlq replay``), and
exposes the field list the Arrow types and the ClickHouse columns are derived from or tested against.
"""

from rtap.contract.model import (
    CURRENT_VERSION,
    DEVICES,
    EVENT_TYPES,
    PRICE_PRECISION,
    PRICE_SCALE,
    REQUIRED_FIELDS,
    ContractField,
    contract_fields,
    format_event_time,
    load_schema,
    parse_event_time,
    validate_event,
)

__all__ = [
    "CURRENT_VERSION",
    "DEVICES",
    "EVENT_TYPES",
    "PRICE_PRECISION",
    "PRICE_SCALE",
    "REQUIRED_FIELDS",
    "ContractField",
    "contract_fields",
    "format_event_time",
    "load_schema",
    "parse_event_time",
    "validate_event",
]
