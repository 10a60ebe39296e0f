"""Contract evolution: which new versions may ship (pure functions on small schema variants, and the CLI)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from rtap.cli import app
from rtap.contract import load_schema
from rtap.contract.compat import check_compatible, check_shipped, incompatibilities, load_candidate, shipped_versions
from rtap.errors import ContractCompatibilityError, ContractError

Schema = dict[str, Any]


def variant(change: Callable[[Schema], object]) -> Schema:
    schema = copy.deepcopy(load_schema(1))
    change(schema)
    return schema


def add_optional(schema: Schema) -> None:
    schema["properties"]["coupon_code"] = {"type": ["string", "null"], "maxLength": 64}


COMPATIBLE = {
    "new optional field": add_optional,
    "reworded description": lambda s: s["properties"]["price"].update(description="Unit price."),
    "new $id and title": lambda s: s.update({"$id": "urn:rtap:contract:clickstream-event:2", "title": "Event v2"}),
}

BREAKING = {
    "removed field": (lambda s: s["properties"].pop("referrer"), "properties.referrer"),
    "renamed field": (
        lambda s: s["properties"].update(referer=s["properties"].pop("referrer")),
        "properties.referrer",
    ),
    "changed type": (lambda s: s["properties"]["quantity"].update(type=["number", "null"]), "quantity.type"),
    "new required field": (
        lambda s: [add_optional(s), s["required"].append("coupon_code")],  # type: ignore[func-returns-value]
        "coupon_code is newly required",
    ),
    "required field made optional": (lambda s: s["required"].remove("page_url"), "page_url is no longer required"),
    "narrowed enum": (lambda s: s["properties"]["device"]["enum"].remove("tablet"), "device.enum: narrowed"),
    "widened enum": (lambda s: s["properties"]["event_type"]["enum"].append("wishlist_add"), "widened"),
    "tightened maximum": (lambda s: s["properties"]["price"].update(maximum=1000), "price.maximum: tightened"),
    "tightened maxLength": (lambda s: s["properties"]["user_id"].update(maxLength=64), "user_id.maxLength"),
    "new pattern": (lambda s: s["properties"]["user_id"].update(pattern="^u"), "user_id.pattern: added"),
    "closed to extra fields": (lambda s: s.update(additionalProperties=False), "additionalProperties"),
    "changed purchase rule": (lambda s: s["allOf"][0]["then"]["required"].remove("order_id"), "allOf"),
    "new schema version number": (lambda s: s["properties"]["schema_version"]["enum"].insert(1, 2), "widened"),
}


@pytest.mark.parametrize("change", COMPATIBLE.values(), ids=COMPATIBLE.keys())
def test_compatible_changes_are_accepted(change: Callable[[Schema], object]) -> None:
    assert incompatibilities(load_schema(1), variant(change)) == []


@pytest.mark.parametrize(("change", "expected"), BREAKING.values(), ids=BREAKING.keys())
def test_breaking_changes_are_refused_with_the_reason(change: Callable[[Schema], object], expected: str) -> None:
    with pytest.raises(ContractCompatibilityError) as refused:
        check_compatible(load_schema(1), variant(change))
    assert expected in str(refused.value)


def test_every_problem_is_listed() -> None:
    schema = variant(lambda s: (s["properties"].pop("referrer"), s["properties"]["price"].update(maximum=1)))
    assert [p.path for p in incompatibilities(load_schema(1), schema)] == [
        "properties.referrer",
        "properties.price.maximum",
    ]


def test_shipped_versions_are_compatible() -> None:
    assert shipped_versions()[0] == 1
    assert len(check_shipped()) == len(shipped_versions()) - 1


@pytest.mark.parametrize(
    ("payload", "message"),
    [(b"{", "not JSON"), (b"[]", "object schema"), (b'{"properties": {"a": {"type": "nope"}}}', "valid JSON Schema")],
)
def test_unusable_candidates_are_refused(payload: bytes, message: str) -> None:
    with pytest.raises(ContractError, match=message):
        load_candidate(payload, label="candidate")


def test_cli_accepts_and_refuses(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_bytes(orjson.dumps(variant(add_optional)))
    bad.write_bytes(orjson.dumps(variant(BREAKING["removed field"][0])))
    runner = CliRunner()
    accepted = runner.invoke(app, ["contract", "check", "--new", str(good)])
    assert accepted.exit_code == 0, accepted.output
    assert "compatible with contract v1" in accepted.output
    refused = runner.invoke(app, ["contract", "check", "--new", str(bad), "--base", "1"])
    assert isinstance(refused.exception, ContractCompatibilityError)
    shipped = runner.invoke(app, ["contract", "check"])
    assert shipped.exit_code == 0, shipped.output
