"""What the commands' options share: a number an option takes is a finite one.

click's ``FloatRange`` lets ``nan`` and ``inf`` through (``nan < 1`` is false, so nan is never below a minimum),
and a float option without a range takes them anyway; each would then fail deep inside a command (a
``timedelta`` that overflows, a wait that never ends) or after it had started things. Every float option of
rtap's commands takes :func:`finite` as its callback (tests/unit/test_options.py walks them all).
"""

from __future__ import annotations

import math

import typer


def finite(value: float | None) -> float | None:
    """A typer callback: ``value`` unless it is nan or infinite, which is a usage error (one line, exit 2)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value
