"""Can a new contract version ship without breaking the readers of an earlier one?

rtap's rule is *full* compatibility on the fields an earlier version knows, because both directions happen
in one topic: a v1 reader (the running stream job, a dashboard query) receives v2 events, and a v2 reader
receives events still written by v1 producers. So a new version may only:

- add **optional** properties (v1 accepts unknown fields: ``additionalProperties`` is true), and
- change annotations that do not validate anything (``description``, ``title``, ``$comment``, ...).

Everything else breaks someone and is refused with the reason:

- a removed or renamed property, or one that stops being required: v1 readers rely on it;
- a new required property: v1 events lack it and would be refused;
- any change to an existing property's validation (type, enum, format, pattern, lengths, bounds):
  narrowing refuses v1 events, widening hands v1 readers values they refuse ("relaxes" what they rely on);
- any change to the document-level rules (``allOf`` conditions, ``additionalProperties``, ``type``).

``schema_version`` is no exception: it names the *wire-compatible* major version, so a compatible new
version still accepts 1; a version whose events v1 readers must tell apart is, by definition, breaking.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from itertools import pairwise
from typing import Any

import fastjsonschema
import orjson

from rtap.contract.model import FORMAT_PATTERNS, load_schema
from rtap.errors import ContractCompatibilityError, ContractError

# Keywords that document a schema without constraining any value.
ANNOTATIONS = frozenset({"description", "title", "$comment", "examples", "default", "deprecated", "$id"})
# Bounds where a larger new value accepts more (relaxes); for the others a larger value accepts less.
_UPPER_BOUNDS = frozenset({"maxLength", "maximum", "exclusiveMaximum", "maxItems", "maxProperties"})
_LOWER_BOUNDS = frozenset({"minLength", "minimum", "exclusiveMinimum", "minItems", "minProperties"})
_SCHEMA_FILE = re.compile(r"^clickstream-event\.v(\d+)\.json$")


@dataclass(frozen=True)
class Incompatibility:
    """One reason a new version breaks readers of the base version."""

    path: str  # "properties.price.maximum", "required", ...
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def _strip(schema: Any) -> Any:
    """``schema`` without annotation keywords, at every depth (they never change what validates)."""
    if isinstance(schema, dict):
        return {key: _strip(value) for key, value in schema.items() if key not in ANNOTATIONS}
    if isinstance(schema, list):
        return [_strip(value) for value in schema]
    return schema


def _as_set(value: Any) -> set[str]:
    """Values of a ``type`` or ``enum`` keyword, comparable whatever their JSON type."""
    values = value if isinstance(value, list) else [value]
    return {orjson.dumps(item).decode() for item in values}


def _direction(keyword: str, old: Any, new: Any) -> str:
    """Explain a changed keyword: which side it breaks."""
    relaxed = "relaxed: v1 readers would refuse events of the new version"
    tightened = "tightened: events of v1 producers would be refused"
    if keyword in ("type", "enum") and old is not None and new is not None:
        old_set, new_set = _as_set(old), _as_set(new)
        if new_set < old_set:
            return f"narrowed ({tightened})"
        if new_set > old_set:
            return f"widened ({relaxed})"
        return "changed (breaks readers and producers of v1)"
    both_numbers = isinstance(old, int | float) and isinstance(new, int | float)
    if keyword in _UPPER_BOUNDS and both_numbers:
        return tightened if new < old else relaxed
    if keyword in _LOWER_BOUNDS and both_numbers:
        return tightened if new > old else relaxed
    if old is None:
        return f"added ({tightened})"
    if new is None:
        return f"removed ({relaxed})"
    return "changed (breaks readers and producers of v1)"


def _property_changes(name: str, old: dict[str, Any], new: dict[str, Any]) -> Iterator[Incompatibility]:
    for keyword in sorted(old.keys() | new.keys()):
        before, after = old.get(keyword), new.get(keyword)
        if before != after:
            yield Incompatibility(
                f"properties.{name}.{keyword}",
                f"{_direction(keyword, before, after)}: {orjson.dumps(before).decode()} -> "
                f"{orjson.dumps(after).decode()}",
            )


def incompatibilities(base: dict[str, Any], new: dict[str, Any]) -> list[Incompatibility]:
    """Every reason ``new`` breaks readers or producers of ``base`` (empty: compatible)."""
    old_schema, new_schema = _strip(base), _strip(new)
    problems: list[Incompatibility] = []
    old_props: dict[str, Any] = old_schema.get("properties", {})
    new_props: dict[str, Any] = new_schema.get("properties", {})
    old_required, new_required = set(old_schema.get("required", [])), set(new_schema.get("required", []))

    for name in sorted(old_props.keys() - new_props.keys()):
        problems.append(Incompatibility(f"properties.{name}", "removed or renamed: v1 readers rely on it"))
    for name in sorted(old_required - new_required):
        if name in new_props:
            problems.append(Incompatibility("required", f"{name} is no longer required: v1 readers rely on it"))
    for name in sorted(new_required - old_required):
        problems.append(Incompatibility("required", f"{name} is newly required: v1 events lack it"))
    for name in sorted(old_props.keys() & new_props.keys()):
        problems.extend(_property_changes(name, old_props[name], new_props[name]))
    for keyword in sorted((old_schema.keys() | new_schema.keys()) - {"properties", "required", "$schema"}):
        before, after = old_schema.get(keyword), new_schema.get(keyword)
        if keyword == "additionalProperties" and before in (None, True) and after in (None, True):
            continue
        if before != after:
            problems.append(
                Incompatibility(keyword, "document-level rule changed: only new optional fields may be added")
            )
    if old_schema.get("$schema") != new_schema.get("$schema"):
        problems.append(Incompatibility("$schema", "a different JSON Schema draft validates differently"))
    return problems


def check_compatible(base: dict[str, Any], new: dict[str, Any], *, label: str = "the new version") -> None:
    """Raise :class:`ContractCompatibilityError` listing every incompatibility of ``new`` with ``base``."""
    problems = incompatibilities(base, new)
    if problems:
        raise ContractCompatibilityError(
            f"{label} breaks readers of the base version ({len(problems)} problems): "
            + "; ".join(str(problem) for problem in problems)
        )


def load_candidate(data: bytes, *, label: str) -> dict[str, Any]:
    """Parse a proposed contract and make sure it is a usable JSON Schema (the validator compiles it)."""
    try:
        schema = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ContractError(f"{label} is not JSON: {exc}") from exc
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        raise ContractError(f"{label} is not an object schema with 'properties'")
    try:
        fastjsonschema.compile(schema, formats=FORMAT_PATTERNS)
    except fastjsonschema.JsonSchemaDefinitionException as exc:
        raise ContractError(f"{label} is not a valid JSON Schema: {exc}") from exc
    return schema


def shipped_versions() -> list[int]:
    """The contract versions in this package, ascending."""
    directory = resources.files("rtap.contract") / "schemas"
    versions = [int(match.group(1)) for entry in directory.iterdir() if (match := _SCHEMA_FILE.match(entry.name))]
    return sorted(versions)


def check_shipped() -> list[tuple[int, int]]:
    """Check every shipped version against the one before it; returns the (base, new) pairs checked."""
    versions = shipped_versions()
    pairs = list(pairwise(versions))
    for base, new in pairs:
        check_compatible(load_schema(base), load_schema(new), label=f"contract v{new}")
    return pairs
