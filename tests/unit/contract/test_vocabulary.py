"""The warehouse's SQL spells the pipeline's event types as rtap.contract.vocabulary does."""

from __future__ import annotations

import re
from importlib import resources

from rtap.contract import EVENT_TYPES
from rtap.contract.vocabulary import PAGE_VIEW_TYPES, PURCHASE


def migrations() -> str:
    folder = resources.files("rtap.warehouse") / "migrations"
    return "\n".join(entry.read_text() for entry in folder.iterdir() if entry.name.endswith(".sql"))


def test_every_page_view_list_in_the_sql_is_the_vocabularys() -> None:
    lists = re.findall(r"event_type IN \(([^)]*)\)", migrations())
    assert lists, "no event_type IN (...) in the migrations"
    for found in lists:
        assert tuple(re.findall(r"'(\w+)'", found)) == PAGE_VIEW_TYPES


def test_every_event_type_the_sql_names_is_the_contracts() -> None:
    named = set(re.findall(r"event_type = '(\w+)'", migrations()))
    assert PURCHASE in named
    assert named <= set(EVENT_TYPES)
    assert set(PAGE_VIEW_TYPES) | {PURCHASE} <= set(EVENT_TYPES)
