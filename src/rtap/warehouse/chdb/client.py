"""Embedded ClickHouse (chDB): data in ``settings.paths.chdb``, owned by one process at a time.

Within the owning process every client shares one engine (:class:`_Engine`): chDB can run one data
directory per process, and the stream sink, the dashboard and the socket server all use it at once.

Why writes take the engine's lock: chDB resolves ``Python(name)`` through one name cache for the whole
process, filled from the calling thread's Python frames and emptied after every query, so two threads
inserting from Arrow at the same time can read each other's tables (measured: 6 threads x 30 concurrent
inserts gave a wrong sum without the lock, the exact one with it). Every query on the read-write session,
and every query that binds inputs, takes it.

Why a read without inputs does not: chDB runs the read-only connection's query beside the session's
(measured on chDB 4.4: a 9 ms insert while a 3.5 s read ran on the other connection; 2,000 Arrow inserts
beside 10,195 reads on four threads summed exactly), and a dashboard read that waits for the job's lock,
or makes the job's next write wait for it, costs the job's freshness (issue 24). Reads take their own
lock instead: the read-only connection answers one query at a time, and a failed query's leftover output
(below) must be taken before another thread's query runs on it.

Why two chDB connections: the read-write session, and a second connection to the same directory
opened with ``readonly=2`` and the reader's limits (``read_limits``: time, memory, result size), which the
engine itself enforces for read-only clients, the socket channel and ``query_text``. ``readonly=2`` rather
than 1 because 1 also forbids per-query settings (a read may lower its limits) and the ``Python()`` table
function that ``$inputs`` need; writes and changing ``readonly`` itself are refused either way (code 164).
``readonly=2`` would let a query's own settings lift the limits: read-only clients refuse those before the
engine sees them (rtap.warehouse.client). The job's session has no such limits: its writes must finish.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rtap.errors import ConfigError, WarehouseError
from rtap.warehouse import sql as sqltext
from rtap.warehouse.chdb.errors import translate
from rtap.warehouse.chdb.merges import MergePriority
from rtap.warehouse.chdb.ownership import Ownership, try_acquire
from rtap.warehouse.client import WarehouseClient, read_limits
from rtap.warehouse.parameters import format_parameters
from rtap.warehouse.schema import Schema

if TYPE_CHECKING:
    import pyarrow as pa

    from rtap.settings import Settings

# Names the Python() table function sees for ``$name`` inputs; the prefix keeps them from ever
# matching an unrelated variable further up the stack.
INPUT_PREFIX = "_rtap_input_"
_CALL = "_conn.query(_sql, _fmt, params=_params)"


def _execute(conn: Any, sql: str, fmt: str, params: dict[str, str], inputs: dict[str, pa.Table]) -> Any:
    """Run ``sql`` with each input bound as a local variable where ``Python(...)`` finds it.

    ``eval`` with an explicit locals mapping is the one way to give chDB a frame whose local names
    are chosen at run time; the evaluated expression is a constant, never caller text.
    """
    scope: dict[str, Any] = {INPUT_PREFIX + name: table for name, table in inputs.items()}
    scope.update(_conn=conn, _sql=sql, _fmt=fmt, _params=params)
    return eval(_CALL, {"__builtins__": {}}, scope)


class _Engine:
    """One process's chDB engine on one directory: both connections, their locks, and who uses them."""

    # chdb ships py.typed but leaves its API untyped; Any keeps strict mypy useful everywhere else.
    session: Any
    readonly: Any

    def __init__(self, directory: Path, ownership: Ownership, limits: dict[str, float], merge_nice: int) -> None:
        from chdb import connect, session

        self.directory = directory
        self.ownership = ownership
        self.limits = limits
        self.lock = threading.Lock()  # the read-write session, and any query that binds inputs
        self.read_lock = threading.Lock()  # the read-only connection
        self.users = 0
        try:
            self.session = session.Session(str(directory))  # type: ignore[no-untyped-call]
        except RuntimeError as exc:
            ownership.release()
            raise translate(exc) from exc
        try:
            options = "&".join(f"{name}={value}" for name, value in {"readonly": 2, **limits}.items())
            self.readonly = connect(f"{directory}?{options}")  # type: ignore[no-untyped-call]
        except RuntimeError as exc:
            self.session.close()
            ownership.release()
            raise translate(exc) from exc
        self.merge_priority = MergePriority(merge_nice)

    def run(
        self,
        *,
        readonly: bool,
        sql: str,
        fmt: str,
        params: dict[str, str] | None = None,
        inputs: dict[str, pa.Table] | None = None,
    ) -> Any:
        conn = self.readonly if readonly else self.session
        with contextlib.ExitStack() as held:
            if readonly:
                held.enter_context(self.read_lock)
            if not readonly or inputs:
                held.enter_context(self.lock)
            try:
                return _execute(conn, sql, fmt, params or {}, inputs or {})
            except RuntimeError as exc:  # ChdbError is a RuntimeError
                # A query that fails while it writes Arrow (a time or memory limit, throwIf) leaves its partial
                # output in the connection, and chDB hands it to the next query as that one's answer (measured:
                # "Invalid flatbuffers message"). One throwaway query takes it.
                error = translate(exc, sql)
                try:
                    conn.query("SELECT 1", "TabSeparated")
                except RuntimeError as cleanup:  # the query's own error stays the one raised, and says so
                    error.add_note(f"then clearing the connection failed too: {str(cleanup).strip()[:200]}")
                raise error from exc

    def close(self) -> None:
        self.merge_priority.stop()
        with self.read_lock, self.lock:
            self.readonly.close()
            self.session.close()
            self.ownership.release()


_engines: dict[Path, _Engine] = {}
_engines_lock = threading.Lock()


class ChdbClient(WarehouseClient):
    """A client on this process's chDB engine; read-only clients use the engine's readonly connection."""

    def __init__(self, engine: _Engine, database: str, *, readonly: bool, schema: Schema | None = None) -> None:
        super().__init__(database, readonly=readonly, limits=engine.limits, schema=schema)
        self._engine = engine
        self._closed = False

    @property
    def directory(self) -> Path:
        return self._engine.directory

    def readonly_view(self) -> ChdbClient:
        """Another, read-only client on the same engine (the socket channel serves through one)."""
        with _engines_lock:
            self._engine.users += 1
        return ChdbClient(self._engine, self.database, readonly=True, schema=self.schema)

    def _bind(self, statement: str, inputs: dict[str, pa.Table]) -> str:
        for name in inputs:
            sqltext.check_identifier(name, "input name")
        return sqltext.substitute_inputs(statement, inputs, lambda name: f"Python({INPUT_PREFIX}{name})")

    def _command(
        self, statement: str, inputs: dict[str, pa.Table], parameters: dict[str, Any], settings: dict[str, Any]
    ) -> None:
        sql = self._bind(statement, inputs) + sqltext.settings_clause(settings)
        self._engine.run(
            readonly=False, sql=sql, fmt="TabSeparated", params=format_parameters(parameters), inputs=inputs
        )

    def _query_arrow(
        self,
        statement: str,
        inputs: dict[str, pa.Table],
        parameters: dict[str, Any],
        settings: dict[str, Any],
    ) -> pa.Table:
        sql = self._bind(statement, inputs) + sqltext.settings_clause(settings)
        result = self._engine.run(
            readonly=self.readonly,
            sql=sql,
            fmt="ArrowTable",
            params=format_parameters(parameters),
            inputs=inputs,
        )
        import pyarrow as pa  # loaded by chDB already when it answered in Arrow

        if not isinstance(result, pa.Table):
            raise WarehouseError("chDB did not return Arrow (a FORMAT clause has no place in query_arrow)")
        return result

    def _query_text(self, statement: str, default_format: str) -> bytes:
        sql = self._bind(statement, {})
        result = self._engine.run(readonly=True, sql=sql, fmt=default_format)
        return bytes(result.bytes())

    def _insert_arrow(self, table: str, data: pa.Table, dedup_token: str | None) -> None:
        columns = ", ".join(sqltext.quote_identifier(name) for name in data.column_names)
        settings = {"insert_deduplication_token": dedup_token} if dedup_token is not None else {}
        sql = (
            f"INSERT INTO {self.database}.{table} ({columns}) SELECT {columns} FROM Python({INPUT_PREFIX}data)"
            + sqltext.settings_clause(settings)
        )
        self._engine.run(readonly=False, sql=sql, fmt="TabSeparated", inputs={"data": data})

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with _engines_lock:
            self._engine.users -= 1
            if self._engine.users > 0:
                return
            _engines.pop(self._engine.directory, None)
        self._engine.close()


def own_engine(settings: Settings, *, readonly: bool = False) -> ChdbClient | None:
    """A client on this process's engine for ``settings.paths.chdb``, opening it if no process owns it yet.

    None when another process holds the directory's lock: then only its read-only channel can reach it.
    """
    directory = settings.paths.chdb
    if "?" in str(directory):
        raise ConfigError(f"the chDB data directory may not contain '?': {directory}")
    with _engines_lock:
        engine = _engines.get(directory)
        if engine is None:
            if _engines:
                (other,) = _engines
                raise WarehouseError(
                    f"chDB runs one data directory per process: {other} is open here, {directory} was asked for"
                )
            ownership = try_acquire(directory)
            if ownership is None:
                return None
            engine = _Engine(directory, ownership, read_limits(settings.warehouse), settings.warehouse.merge_nice)
            _engines[directory] = engine
        engine.users += 1
        return ChdbClient(
            engine, settings.warehouse.database, readonly=readonly, schema=Schema.from_settings(settings.warehouse)
        )
