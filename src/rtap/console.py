"""Where rtap's commands print for people: never hard-wrapped, rich's formatting only on a terminal.

rich wraps text at the console's width, and when the output is not a terminal that width is a guess (80
columns, or ``$COLUMNS``). A path or a SQL statement printed into a pipe, a log file or a CI job came out
split across lines, so a copied command failed, and a test looking for a sentence failed when the checkout's
path was a little longer (issue #16). So every command takes its console from :func:`console`:

- a line is as long as its text (``soft_wrap``): a terminal folds a long line for display only, and copying
  it gives the whole line back;
- on a terminal: colours and styles;
- anywhere else: no colours or escape codes (markup is reduced to its text), and tables are laid out as wide
  as their content instead of squeezed into 80 columns.

Markup is off unless asked for, because rich reads ``[...]`` in a path or a message as a style tag and drops
it; a caller that asks for markup escapes the values it interpolates (:func:`escape`).
"""

from __future__ import annotations

import re
import sys
import unicodedata
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

# Off a terminal nothing is wrapped, so the width only bounds rich's layouts (tables): wide enough for any row.
PLAIN_WIDTH = 10_000


def is_terminal(stream: IO[str]) -> bool:
    """Whether ``stream`` is an interactive terminal (a closed or detached stream is not)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def console(*, stderr: bool = False, markup: bool = False, file: IO[str] | None = None) -> Console:
    """A console on stdout (or ``stderr``, or ``file``) that follows the rules in the module docstring.

    rich is imported here, not at module level: ``rtap sql`` prints no rich output and should not pay for it.
    """
    from rich.console import Console

    stream = file if file is not None else (sys.stderr if stderr else sys.stdout)
    terminal = is_terminal(stream)
    return Console(
        # Without a file rich looks sys.stdout/sys.stderr up on every write, so a test runner's capture works.
        file=file,
        stderr=stderr,
        # Decided by the stream alone: FORCE_COLOR or TERM must not put escape codes into a log file.
        force_terminal=terminal,
        width=None if terminal else PLAIN_WIDTH,
        soft_wrap=True,
        markup=markup,
        highlight=False,
        emoji=False,
    )


def escape(text: object) -> str:
    """``text`` as literal characters inside a markup string (``[`` no longer opens a style)."""
    from rich.markup import escape as rich_escape

    return rich_escape(str(text))


_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
# Controls (C0, DEL, C1), format characters (bidi overrides and isolates, zero-width characters, the BOM) and the
# line and paragraph separators: what a terminal acts on or draws differently from the text around it.
UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
# Everything outside printable ASCII is a candidate; the category decides (most text is ASCII: one scan).
UNSAFE_CANDIDATE = re.compile(r"[^\x20-\x7e]")


def inert(text: str, *, keep: str = "") -> str:
    """``text`` with nothing a terminal would act on: controls (C0, C1), bidi and other format characters and line
    separators written as escapes (``\\n``, ``\\x1b``, ``\\u202e``); printable text in any script stays as it
    is, and so do the characters of ``keep`` (e.g. a table's newlines and tabs).

    For whatever a producer or a browser wrote that reaches an operator's terminal: a hostile value must not
    arrive there as control sequences or reordered text."""

    def escaped(match: re.Match[str]) -> str:
        char = match.group(0)
        if char in keep:
            return char
        if char in _NAMED:
            return _NAMED[char]
        if unicodedata.category(char) not in UNSAFE_CATEGORIES:
            return char
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"

    return UNSAFE_CANDIDATE.sub(escaped, text)
