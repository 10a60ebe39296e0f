"""One line of ``rtap status`` or ``rtap preflight``: what was checked, whether it passed, and the figure or the
reason behind it (one line, never wrapped)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    """One checked part: ``detail`` is what a reader needs to act on it."""

    name: str
    ok: bool
    detail: str
