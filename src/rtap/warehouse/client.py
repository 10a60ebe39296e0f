"""The warehouse client every stage uses: the base class the backends implement.

:class:`WarehouseClient` holds what is the same for every backend: ``{db}`` rendering, one
statement per call, read-only checks, ``$name`` input markers and row conversion.

Reads run under the reader's limits (:func:`read_limits`: time, memory, result size), which the engine holds:
chDB's read-only connection is opened with them, a server's reader profile sets them. A read-only client
takes no other per-query setting, and no value above a limit (a query may tighten one, never lift it), and
refuses what would reach beyond the warehouse (:func:`rtap.warehouse.sql.outside_reach`) before the engine
runs it, judged on the statement as the engine's own parser reads it (``_as_the_engine_reads``). A backend
implements five hooks (``_command``, ``_query_arrow``, ``_query_text``, ``_insert_arrow``,
``_close``) that receive already rendered, checked SQL. Backends:

- ``rtap.warehouse.chdb``: embedded chDB, one owning process per data directory, and read-only access to a
  directory another rtap process owns (``chdb.channel``);
- ``rtap.warehouse.server``: a ClickHouse server through clickhouse-connect.

The factory, ``rtap.warehouse.create_client``, is at the package's face: this module imports no backend.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from rtap.errors import QueryRejectedError, RetryableWarehouseError, WarehouseError
from rtap.warehouse import sql as sqltext
from rtap.warehouse.schema import Schema

if TYPE_CHECKING:
    import pyarrow as pa

    from rtap.settings import WarehouseSettings


DEFAULT_TEXT_FORMAT = "PrettyCompactMonoBlock"
_AS_READ = "SELECT formatQuerySingleLine({statement:String})"
# Statements whose reading a client keeps: the panels of every dashboard and Metabase card, with room to spare.
READINGS_KEPT = 256


def read_limits(settings: WarehouseSettings) -> dict[str, float]:
    """The reader's limits as ClickHouse settings: the engine stops a read past any of them, and runs it on at
    most ``max_threads`` threads."""
    memory = settings.read_max_memory_bytes
    return {
        "max_execution_time": settings.read_max_execution_time_s,
        "max_memory_usage": memory,
        "max_result_bytes": memory,
        "max_threads": settings.read_max_threads,
    }


class WarehouseClient(ABC):
    """A connection to ClickHouse; a context manager, safe to share between threads."""

    database: str
    readonly: bool
    limits: dict[str, float]
    schema: Schema

    def __init__(
        self, database: str, *, readonly: bool, limits: Mapping[str, float], schema: Schema | None = None
    ) -> None:
        """``schema``: how migrations render their DDL here and each table's retention (rtap.warehouse.schema);
        the backends build it from the settings, so every caller of ``apply_migrations`` targets the same place."""
        self.database = sqltext.check_identifier(database, "database name")
        self.readonly = readonly
        self.limits = dict(limits)
        self.schema = schema or Schema()
        # A statement's reading depends on its text alone, and the dashboard sends the same few texts on every
        # refresh (their values go as parameters): the engine parses each once, not once a query.
        self._engine_reading = functools.lru_cache(maxsize=READINGS_KEPT)(self._as_the_engine_reads)

    # -- public interface -------------------------------------------------------------------------

    def render(self, sql: str) -> str:
        """``sql`` with every ``{db}`` replaced by the database name (in literals too, e.g. system.tables filters)."""
        return sql.replace("{db}", self.database)

    def command(
        self,
        sql: str,
        *,
        inputs: Mapping[str, pa.Table] | None = None,
        parameters: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        """Run one statement that returns nothing useful: DDL, ``INSERT ... SELECT`` (from ``$inputs`` too).
        ``parameters`` fill ``{name:Type}`` placeholders, as in :meth:`query_arrow`."""
        statement = self._statement(sql)
        if self.readonly:
            raise QueryRejectedError(self._refusal(statement), query=statement)
        self._command(statement, dict(inputs or {}), dict(parameters or {}), dict(settings or {}))

    def query_arrow(
        self,
        sql: str,
        *,
        inputs: Mapping[str, pa.Table] | None = None,
        parameters: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> pa.Table:
        """The result of one query as an Arrow table. ``parameters`` fill ``{name:Type}`` placeholders."""
        statement = self._statement(sql)
        if self.readonly:
            self._check_read_only(statement)
            self._check_read_settings(settings or {})
        return self._query_arrow(statement, dict(inputs or {}), dict(parameters or {}), dict(settings or {}))

    def query_rows(self, sql: str, *, parameters: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """The result as Python tuples (through Arrow, so types match :meth:`query_arrow` on every backend)."""
        table = self.query_arrow(sql, parameters=parameters)
        columns = [column.to_pylist() for column in table.columns]
        return list(zip(*columns, strict=True)) if columns else []

    def insert_arrow(self, table: str, data: pa.Table, *, dedup_token: str | None = None) -> None:
        """Insert ``data`` into ``{db}.<table>``, columns matched by name.

        With ``dedup_token`` the insert is idempotent: ClickHouse drops a repeat with the same token
        (``insert_deduplication_token``; rtap's tables keep a non-replicated deduplication window).
        """
        sqltext.check_identifier(table, "table name")
        target = f"{self.database}.{table}"
        if self.readonly:
            raise QueryRejectedError(self._refusal(f"INSERT INTO {target}"), query=f"INSERT INTO {target}")
        if data.num_columns == 0:
            raise WarehouseError(f"cannot insert into {target}: the Arrow table has no columns")
        if data.num_rows == 0:
            return
        self._insert_arrow(table, data, dedup_token)

    def query_text(self, sql: str, *, default_format: str = DEFAULT_TEXT_FORMAT) -> bytes:
        """ClickHouse's own formatted output of a read-only query; a FORMAT clause in ``sql`` wins."""
        statement = self._statement(sql)
        self._check_read_only(statement)
        sqltext.check_identifier(default_format, "output format")
        return self._query_text(statement, default_format)

    def close(self) -> None:
        """Release the connection; the client cannot be used afterwards."""
        self._close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- helpers for backends ---------------------------------------------------------------------

    def _statement(self, sql: str) -> str:
        return sqltext.single_statement(self.render(sql))

    def _refusal(self, statement: str) -> str:
        """The one-line reason a write is refused on this client (backends add where to write instead)."""
        return f"refused on a read-only warehouse connection: {_head(statement)}"

    def _check_read_only(self, statement: str) -> None:
        read = self._engine_reading(statement)
        if not sqltext.is_read_only(read):
            raise QueryRejectedError(
                f"{self._refusal(statement)} (only SELECT, WITH, SHOW, DESCRIBE, EXPLAIN and EXISTS are allowed)",
                query=statement,
            )
        reason = sqltext.outside_reach(read)
        if reason is not None:
            raise QueryRejectedError(f"refused, {reason}: {_head(statement)}", query=statement)

    def _as_the_engine_reads(self, statement: str) -> str:
        """``statement`` as ClickHouse's own parser reads it, printed back on one line (``formatQuerySingleLine``):
        no comments, every literal quoted one way, and exactly one statement (several are a parse error).

        The read checks judge this text, never the text as sent: a lexer of rtap's own would have to agree with
        the engine's on every comment and quoting rule, and it did not (``#`` and ``//`` start comments there, not
        here: a ``file()`` call or a SETTINGS clause hid from the checks in what looked like a string literal). The
        statement itself goes to the engine only as a string parameter here, so nothing of it runs.
        """
        try:
            table = self._query_arrow(_AS_READ, {}, {"statement": statement}, {})
        except RetryableWarehouseError:
            raise  # the engine's state, not the statement's: the caller may retry
        except WarehouseError as error:
            reason = str(error).split(" In scope ", 1)[0]
            raise QueryRejectedError(f"refused, ClickHouse cannot parse it: {reason}", query=statement) from error
        return str(table.column(0)[0].as_py())

    def _check_read_settings(self, settings: Mapping[str, Any]) -> None:
        """A read may lower the reader's limits, nothing else: any other setting, or a limit lifted, is refused."""
        for name, value in settings.items():
            limit = self.limits.get(name)
            if limit is None:
                allowed = ", ".join(self.limits)
                raise QueryRejectedError(f"a read takes no setting {name}; only its limits ({allowed}) may be lowered")
            number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
            if number is None or not 0 < number <= limit:
                raise QueryRejectedError(f"{name}={value!r} would lift the reader's limit of {limit:g}")

    # -- backend hooks: called with rendered, single, checked statements ---------------------------

    @abstractmethod
    def _command(
        self, statement: str, inputs: dict[str, pa.Table], parameters: dict[str, Any], settings: dict[str, Any]
    ) -> None:
        """Run a write or DDL statement; only ever called on a read-write client."""

    @abstractmethod
    def _query_arrow(
        self,
        statement: str,
        inputs: dict[str, pa.Table],
        parameters: dict[str, Any],
        settings: dict[str, Any],
    ) -> pa.Table:
        """Run a query and return Arrow; on a read-only client the statement already passed the check."""

    @abstractmethod
    def _query_text(self, statement: str, default_format: str) -> bytes:
        """Run a read-only statement and return the engine's formatted output."""

    @abstractmethod
    def _insert_arrow(self, table: str, data: pa.Table, dedup_token: str | None) -> None:
        """Insert a non-empty Arrow table into ``{db}.<table>``; only called on a read-write client."""

    @abstractmethod
    def _close(self) -> None:
        """Release whatever the backend holds. Called once per :meth:`close`."""


def _head(statement: str, limit: int = 80) -> str:
    flat = " ".join(statement.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
