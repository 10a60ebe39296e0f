"""Just enough of ClickHouse's lexical rules to handle SQL text safely, without a full parser.

rtap needs to find statement boundaries, comments, its ``$name`` input markers and the leading
keyword of a statement. Doing that with plain string search breaks as soon as a ``;``, ``--`` or
``$`` appears inside a string literal, a quoted identifier or a heredoc, so everything here walks
the text once and only ever looks at code outside those.

The read checks (:func:`is_read_only`, :func:`outside_reach`) are run on the statement as the engine's own
parser prints it back (``rtap.warehouse.client``), where no comment is left and every literal is quoted one way:
this lexer is not the judge of what a read may do, and where it still differs from ClickHouse's (number forms,
heredoc tags that are not identifiers) the only cost is a statement split or stripped differently.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from rtap.errors import WarehouseError

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INPUT_MARKER = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_HEREDOC_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_FIRST_WORD = re.compile(r"\s*(\(|[A-Za-z_]+)")

# Statements that cannot change data or session state. Read-only paths accept only these, so a
# refusal is one clear line before the engine is even asked (the engine still enforces readonly).
READ_ONLY_KEYWORDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS", "("})

SegmentKind = Literal["code", "string", "identifier", "comment", "heredoc"]


@dataclass(frozen=True)
class Segment:
    kind: SegmentKind
    text: str


def _closing_quote(sql: str, start: int, quote: str) -> int:
    """Index just past the quote closing the literal opened at ``start`` (backslash and doubling escape)."""
    index = start + 1
    while index < len(sql):
        char = sql[index]
        if char == "\\":
            index += 2
            continue
        if char == quote:
            if index + 1 < len(sql) and sql[index + 1] == quote:
                index += 2
                continue
            return index + 1
        index += 1
    raise WarehouseError(f"unterminated {quote} quote in SQL starting at character {start}")


# ClickHouse's single-line comments: ``--``, ``//``, and ``#`` before a space or ``!`` (MySQL's, and a shebang).
_LINE_COMMENTS = ("--", "//", "# ", "#!")


def _comment_end(sql: str, start: int) -> int:
    """Index just past the ``/* */`` comment opened at ``start``; they nest, as in ClickHouse (and the standard)."""
    depth, index = 1, start + 2
    while depth:
        opening, closing = sql.find("/*", index), sql.find("*/", index)
        if closing < 0:
            raise WarehouseError(f"unterminated /* comment in SQL starting at character {start}")
        if 0 <= opening < closing:
            depth, index = depth + 1, opening + 2
        else:
            depth, index = depth - 1, closing + 2
    return index


def segments(sql: str) -> Iterator[Segment]:
    """Split ``sql`` into code and non-code pieces; joining every ``text`` gives ``sql`` back."""
    index = 0
    code_start = 0
    length = len(sql)
    while index < length:
        char = sql[index]
        end: int | None = None
        kind: SegmentKind = "code"
        if char in "'\"`":
            end = _closing_quote(sql, index, char)
            kind = "string" if char == "'" else "identifier"
        elif sql.startswith(_LINE_COMMENTS, index):
            newline = sql.find("\n", index)
            end = length if newline < 0 else newline
            kind = "comment"
        elif sql.startswith("/*", index):
            end, kind = _comment_end(sql, index), "comment"
        elif char == "$":
            tag = _HEREDOC_TAG.match(sql, index)
            if tag:
                close = sql.find(tag.group(0), tag.end())
                if close < 0:
                    raise WarehouseError(f"unterminated heredoc {tag.group(0)} in SQL")
                end, kind = close + len(tag.group(0)), "heredoc"
        if end is None:
            index += 1
            continue
        if code_start < index:
            yield Segment("code", sql[code_start:index])
        yield Segment(kind, sql[index:end])
        index = code_start = end
    if code_start < length:
        yield Segment("code", sql[code_start:])


def strip_comments(sql: str) -> str:
    """``sql`` without its comments (each replaced by one space so tokens stay apart)."""
    return "".join(" " if seg.kind == "comment" else seg.text for seg in segments(sql))


def split_statements(sql: str) -> list[str]:
    """The statements of a script: comments removed, split on ``;`` outside literals, blanks dropped."""
    statements: list[str] = []
    current: list[str] = []
    for seg in segments(sql):
        if seg.kind == "comment":
            current.append(" ")
            continue
        if seg.kind != "code":
            current.append(seg.text)
            continue
        first, *rest = seg.text.split(";")
        current.append(first)
        for piece in rest:
            statements.append("".join(current).strip())
            current = [piece]
    statements.append("".join(current).strip())
    return [statement for statement in statements if statement]


def single_statement(sql: str) -> str:
    """The one statement in ``sql`` (a trailing ``;`` is fine); several are refused.

    chDB would run every statement of a multi-statement string, the HTTP interface refuses them:
    refusing here keeps both backends alike and keeps a read-only check from judging only the first.
    """
    statements = split_statements(sql)
    if len(statements) != 1:
        found = "no statement" if not statements else f"{len(statements)} statements"
        raise WarehouseError(f"expected exactly one SQL statement, got {found}")
    return statements[0]


def leading_keyword(statement: str) -> str:
    """The first keyword of a statement, upper-cased (``(`` for a parenthesised query)."""
    match = _FIRST_WORD.match(strip_comments(statement))
    return match.group(1).upper() if match else ""


def is_read_only(statement: str) -> bool:
    """Whether the statement's kind can only read (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, EXISTS)."""
    return leading_keyword(statement) in READ_ONLY_KEYWORDS


# Functions (table functions, and the function file()) that reach beyond the warehouse: files, URLs, object
# stores, other servers and databases, processes, and the Python objects of the process (chDB's python()).
# Lower case: ClickHouse matches these names case-insensitively. tests/unit/warehouse/test_sql.py checks that
# every table function of the engine is either here or known to read only the warehouse (or generate data).
OUTSIDE_FUNCTIONS = frozenset(
    {
        *("file", "filecluster", "filesystem", "url", "urlcluster", "executable", "executablepool", "python"),
        *("arrowstream", "eval", "remote", "remotesecure", "cluster", "clusterallreplicas"),
        *("s3", "s3cluster", "gcs", "oss", "cosn", "azureblobstorage", "azureblobstoragecluster"),
        *("hdfs", "hdfscluster", "mysql", "postgresql", "jdbc", "odbc", "mongodb", "redis", "sqlite", "bigquery"),
        *("ytsaurus", "prometheusquery", "prometheusqueryrange", "hudi", "hudicluster"),
        *("deltalake", "deltalakecluster", "deltalakeazure", "deltalakeazurecluster", "deltalakelocal"),
        *("deltalakes3", "deltalakes3cluster", "iceberg", "icebergcluster", "icebergazure", "icebergazurecluster"),
        *("iceberghdfs", "iceberghdfscluster", "iceberglocal", "iceberglocalcluster", "icebergs3", "icebergs3cluster"),
        *("paimon", "paimoncluster", "paimonazure", "paimonazurecluster", "paimonhdfs", "paimonhdfscluster"),
        *("paimonlocal", "paimons3", "paimons3cluster"),
    }
)
_CALL = re.compile(r"(?<![\w.$])([A-Za-z_][A-Za-z0-9_]*)\s*\(")
_SETTINGS_CLAUSE = re.compile(r"\bSETTINGS\s+[A-Za-z_][A-Za-z0-9_]*\s*=", re.IGNORECASE)
_OUTFILE = re.compile(r"\bINTO\s+OUTFILE\b", re.IGNORECASE)


def _skeleton(statement: str) -> str:
    """``statement`` with literals emptied, comments blanked and quoted identifiers unquoted (``file``
    written `` `file` `` is still a call), so that a pattern sees only what the engine would parse as code."""
    parts: list[str] = []
    for seg in segments(statement):
        if seg.kind == "code":
            parts.append(seg.text)
        elif seg.kind == "identifier":
            name = seg.text[1:-1]
            parts.append(name if IDENTIFIER.match(name) else "_quoted_")
        else:
            parts.append(" " if seg.kind == "comment" else "''")
    return "".join(parts)


def outside_reach(statement: str) -> str | None:
    """Why a read must not run, or None: it calls a function that reaches beyond the warehouse, writes a file
    (``INTO OUTFILE``), or changes settings (a ``SETTINGS`` clause could lift the reader's limits)."""
    code = _skeleton(statement)
    for match in _CALL.finditer(code):
        name = match.group(1)
        if name.lower() in OUTSIDE_FUNCTIONS:
            return f"{name}() reaches beyond the warehouse (files, URLs, processes or other servers)"
    if _OUTFILE.search(code):
        return "INTO OUTFILE writes a file"
    if _SETTINGS_CLAUSE.search(code):
        return "a SETTINGS clause would change the reader's limits, which are the engine's to set"
    return None


def substitute_inputs(sql: str, names: Mapping[str, Any], reference: Callable[[str], str]) -> str:
    """Replace each ``$name`` marker in code with ``reference(name)``; every marker and every name must match.

    A marker without an input, or an input no marker uses, is a bug in the caller: both fail loudly
    rather than run a query against the wrong data.
    """
    used: set[str] = set()
    parts: list[str] = []
    for seg in segments(sql):
        if seg.kind != "code":
            parts.append(seg.text)
            continue

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in names:
                raise WarehouseError(f"the query uses ${name} but no input named {name!r} was given")
            used.add(name)
            return reference(name)

        parts.append(_INPUT_MARKER.sub(replace, seg.text))
    unused = sorted(set(names) - used)
    if unused:
        raise WarehouseError(f"inputs given but not used in the query: {', '.join(unused)}")
    return "".join(parts)


def check_identifier(name: str, what: str) -> str:
    """``name`` if it is a plain identifier; rtap never needs to quote its own table or input names."""
    if not IDENTIFIER.match(name):
        raise WarehouseError(f"invalid {what} {name!r}: use letters, digits and underscores")
    return name


def quote_identifier(name: str) -> str:
    """A column name as a backquoted identifier (columns such as ``partition`` are keywords)."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_string(value: str) -> str:
    """A single-quoted ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def setting_literal(value: Any) -> str:
    """A value for a ``SETTINGS`` clause."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return repr(value)
    return quote_string(str(value))


def settings_clause(settings: Mapping[str, Any]) -> str:
    """`` SETTINGS a=1, b='x'`` for appending to a statement, or ``''`` when there is nothing to set.

    ClickHouse accepts a second trailing SETTINGS clause after one already in the query, and after
    a FORMAT clause, so appending is safe for SELECT and INSERT ... SELECT.
    """
    if not settings:
        return ""
    pairs = ", ".join(f"{check_identifier(k, 'setting')}={setting_literal(v)}" for k, v in settings.items())
    return f" SETTINGS {pairs}"
