"""Each account's grants (rtap.warehouse.grants) against the SQL the code sends, read by ClickHouse's own parser.

Every statement is collected from where it lives (module constants of the writer's and the reader's code, the
migrations rendered for one server and for a cluster, retention's ALTERs, the dashboards' panels), parsed by
chDB with ``EXPLAIN AST``, and turned into what it needs: SELECT on every table it reads, INSERT on the table it
writes, CREATE/ALTER on what it creates or alters, CLUSTER for ON CLUSTER, CREATE TEMPORARY TABLE for external
data and table functions. Each need must be covered by a grant of the account that runs it. A new query in these
modules is checked without touching this test; a new module that sends SQL fails the inventory test until it is
listed here under its account.
"""

from __future__ import annotations

import importlib
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType

import pytest

from rtap.dashboard.definition import PARAMETER, load_definition
from rtap.settings import WarehouseSettings
from rtap.warehouse import WarehouseClient
from rtap.warehouse import sql as sqltext
from rtap.warehouse.grants import READER, Grant, grant_statements, writer_grants
from rtap.warehouse.migrate import LEDGER_DDL, load_migrations
from rtap.warehouse.schema import RETENTION, Schema, TableTTL

SRC = Path(__file__).resolve().parents[3] / "src"
USERS_XML = SRC.parent / "deploy" / "compose" / "clickhouse" / "users.d" / "rtap-users.xml"

# The modules that send SQL, by the account they run as: the stream job and migrate write; the rest read.
WRITER_MODULES = (
    "rtap.stream.sink",
    "rtap.stream.gaps",
    "rtap.stream.identity",
    "rtap.stream.job",
    "rtap.stream.caps",
    "rtap.warehouse.migrate",
)
READER_MODULES = (
    "rtap.ops.reconcile",
    "rtap.ops.dead_letters",
    "rtap.ops.replay",
    "rtap.runtime.stack.status",
    "rtap.runtime.stack.statusline",
    "rtap.runtime.stack.preflight",  # the reader's probe; its CHECK GRANT (as the writer) needs no grant
)
# Files that name {db} without sending SQL of their own: the clients render it, the dashboards check and
# render the panels (collected from dashboards.yaml), schema and grants make what the tests above collect.
NOT_SENDERS = {
    "rtap/warehouse/cli.py",  # rtap sql: the user's own query, as the reader
    "rtap/warehouse/client.py",
    "rtap/warehouse/server/client.py",
    "rtap/warehouse/schema.py",
    "rtap/warehouse/grants.py",
    "rtap/dashboard/definition.py",
    "rtap/dashboard/metabase/provision.py",
}
CLUSTER = Schema(cluster="rtap_cluster")
_SQL_START = re.compile(r"^\s*(SELECT|WITH|INSERT|ALTER|CREATE)\b")
_INPUT = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_CREATE = re.compile(r"^CREATE\s+(DATABASE|TABLE|VIEW|MATERIALIZED\s+VIEW)\b", re.IGNORECASE)
_MV_TARGET = re.compile(r"\bTO\s+([A-Za-z0-9_{}]+)\.([A-Za-z0-9_]+)\s+AS\b")
_ALTER_PRIVILEGES = {
    "ADD_COLUMN": "ALTER ADD COLUMN",
    "MODIFY_ORDER_BY": "ALTER ORDER BY",
    "MODIFY_TTL": "ALTER TTL",
    "REMOVE_TTL": "ALTER TTL",
    "MODIFY_QUERY": "ALTER VIEW MODIFY QUERY",
}

Need = tuple[str, str, str]  # privilege, database, table ("*" for any)


def _module_sql(module: ModuleType) -> list[str]:
    """The module-level SQL constants: strings, and the strings of dicts and tuples of them."""
    found: list[object] = []
    for value in vars(module).values():
        if isinstance(value, dict):
            found.extend(value.values())
        elif isinstance(value, tuple):
            found.extend(value)
        else:
            found.append(value)
    return [v for v in found if isinstance(v, str) and _SQL_START.match(v) and ("{db}" in v or "system." in v)]


def _writer_statements() -> list[str]:
    statements = [s for name in WRITER_MODULES for s in _module_sql(importlib.import_module(name))]
    files = [*LEDGER_DDL, *(s for migration in load_migrations() for s in migration.statements)]
    for schema in (Schema(), CLUSTER):
        statements += [schema.render(s) for s in files]
        statements += [schema.ttl_statement(ttl) for ttl in schema.retention]
        statements += [schema.ttl_statement(TableTTL(t, column, 0)) for t, (column, _) in RETENTION.items()]
    # migrate records each file with insert_arrow (rtap.warehouse.migrate._record).
    statements.append("INSERT INTO {db}.schema_migrations (version, name, checksum) SELECT 1, 'a', 'b'")
    return statements


def _reader_statements() -> list[str]:
    panels = [panel.sql for dashboard in load_definition().dashboards for panel in dashboard.panels]
    return panels + [s for name in READER_MODULES for s in _module_sql(importlib.import_module(name))]


def _parseable(statement: str) -> str:
    """``statement`` with its markers made plain SQL: ``{name:Type}`` a value of the type, ``$name`` an input
    table's (or expression's) name, as the server backend sends it (external data)."""
    valued = PARAMETER.sub(lambda m: f"defaultValueOfTypeName({sqltext.quote_string(m['type'])})", statement)
    return _INPUT.sub(lambda m: f"_rtap_input_{m.group(1)}", valued)


def _needs(client: WarehouseClient, statement: str) -> set[Need]:
    """What ``statement`` needs, read from ClickHouse's AST of it ({db} is the client's database)."""
    rendered = client.render(statement)
    ast = client.query_arrow("EXPLAIN AST " + _parseable(statement)).column(0).to_pylist()
    head = ast[0].split()
    needs: set[Need] = set()
    if head[0] == "InsertQuery":
        database, table = (line.split()[1] for line in ast if line.startswith(" Identifier "))
        needs.add(("INSERT", database, table))
    elif head[0] == "CreateQuery":
        created = _CREATE.match(rendered)
        assert created, rendered
        kind = " ".join(created.group(1).upper().split())
        database = head[1]
        if kind == "DATABASE":
            needs.add(("CREATE DATABASE", database, "*"))
        else:
            needs.add(("CREATE TABLE" if kind == "TABLE" else "CREATE VIEW", database, head[2]))
        if target := _MV_TARGET.search(rendered):
            needs.add(("INSERT", target.group(1), target.group(2)))
    elif head[0] == "AlterQuery":
        for line in ast:
            if line.strip().startswith("AlterCommand "):
                command = line.split()[1]
                assert command in _ALTER_PRIVILEGES, f"map the privilege of ALTER {command}"
                needs.add((_ALTER_PRIVILEGES[command], head[1], head[2]))
    else:
        assert head[0] in {"SelectWithUnionQuery", "SelectIntersectExceptQuery"}, ast[0]
    for index, line in enumerate(ast):
        words = line.split()
        if words[0] == "TableIdentifier":
            name = words[1]
            if "." in name:
                database, table = name.split(".", 1)
                needs.add(("SELECT", database, table))
            elif name.startswith("_rtap_input_"):
                needs.add(("CREATE TEMPORARY TABLE", "*", "*"))
        elif words[0] == "TableExpression" and ast[index + 1].split()[0] == "Function":
            needs.add(("CREATE TEMPORARY TABLE", "*", "*"))  # a table function
    if " ON CLUSTER " in rendered:
        needs.add(("CLUSTER", "*", "*"))
    return needs


def _covered(need: Need, grants: tuple[Grant, ...], database: str) -> bool:
    privilege, db, table = need
    for grant in grants:
        if privilege not in grant.privileges:
            continue
        on = grant.on(database)
        if on in {"*.*", f"{db}.*", f"{db}.{table}"}:
            return True
    return False


def _uncovered(client: WarehouseClient, statements: list[str], grants: tuple[Grant, ...]) -> dict[str, set[Need]]:
    missing: dict[str, set[Need]] = {}
    for statement in statements:
        gaps = {n for n in _needs(client, statement) if not _covered(n, grants, client.database)}
        if gaps:
            missing[" ".join(statement.split())[:100]] = gaps
    return missing


def test_the_writers_grants_cover_every_statement_it_runs(client: WarehouseClient) -> None:
    statements = _writer_statements()
    assert len(statements) > 80
    grants = writer_grants(WarehouseSettings(backend="server", cluster="rtap_cluster"))
    assert _uncovered(client, statements, grants) == {}


def test_the_readers_grants_cover_every_query_it_runs(client: WarehouseClient) -> None:
    statements = _reader_statements()
    assert len(statements) > 30
    assert _uncovered(client, statements, READER) == {}
    needs: set[Need] = set().union(*(_needs(client, s) for s in statements))
    assert {privilege for privilege, _, _ in needs} == {"SELECT"}  # reads only


def test_the_check_finds_a_missing_grant(client: WarehouseClient) -> None:
    """Without its ALTER TTL grant, retention's ALTERs are found uncovered: the check has teeth."""
    grants = tuple(
        Grant(tuple(p for p in g.privileges if p != "ALTER TTL"), g.target) for g in writer_grants(WarehouseSettings())
    )
    missing = _uncovered(client, [Schema().ttl_statement(TableTTL("events", "ingested_at", 7))], grants)
    assert list(missing.values()) == [{("ALTER TTL", client.database, "events")}]


def test_every_module_that_sends_sql_is_listed_under_its_account() -> None:
    senders = {
        str(path.relative_to(SRC))
        for path in (SRC / "rtap").rglob("*.py")
        if "{db}" in path.read_text(encoding="utf-8")
    }
    listed = {name.replace(".", "/") + ".py" for name in (*WRITER_MODULES, *READER_MODULES)}
    assert senders - NOT_SENDERS == listed


def test_grant_statements_for_a_teams_server() -> None:
    settings = WarehouseSettings(backend="server", user="rtap_writer", readonly_user="rtap_reader", database="shop")
    statements = grant_statements(settings)
    assert statements[0] == (
        "GRANT SELECT, INSERT, CREATE DATABASE, CREATE TABLE, CREATE VIEW, ALTER ADD COLUMN, ALTER ORDER BY, "
        "ALTER TTL, ALTER VIEW MODIFY QUERY ON shop.* TO `rtap_writer`"
    )
    assert "GRANT SELECT ON shop.* TO `rtap_reader`" in statements
    assert not any("CLUSTER" in s for s in statements)
    on_cluster = grant_statements(WarehouseSettings(backend="server", cluster="main", database="shop"))
    assert all(s.startswith("GRANT ON CLUSTER 'main' ") for s in on_cluster)
    assert "GRANT ON CLUSTER 'main' CLUSTER ON *.* TO `default`" in on_cluster


@pytest.mark.parametrize("cluster", ["", "main"])
def test_grant_statements_parse_in_clickhouse(client: WarehouseClient, cluster: str) -> None:
    settings = WarehouseSettings(backend="server" if cluster else "chdb", cluster=cluster)
    for statement in grant_statements(settings):
        ((formatted,),) = client.query_rows("SELECT formatQuery({q:String})", parameters={"q": statement})
        assert str(formatted).startswith("GRANT")


def test_the_compose_readers_grants_are_rtaps() -> None:
    """The compose stack's reader (users.d/rtap-users.xml) gets READER's grants on rtap's databases."""
    reader = ET.parse(USERS_XML).getroot().find("users/rtap_reader/grants")
    assert reader is not None
    granted = {" ".join((query.text or "").split()) for query in reader.findall("query")}
    expected = {
        f"GRANT {', '.join(g.privileges)} ON {g.on('rtap')}" for g in READER if not g.target.startswith("system.")
    }
    assert granted == expected
