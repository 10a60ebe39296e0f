"""The two accounts rtap uses on a ClickHouse server, and every grant each needs: listed here, nowhere else.

- the writer (``RTAP_CLICKHOUSE_USER``): ``rtap migrate`` and the stream job. It creates the databases, tables
  and views of the migrations, alters them (new columns, a sort key, retention), inserts and reads back what it
  wrote; the job's ``$inputs`` travel as external data (temporary tables, hence ``CREATE TEMPORARY TABLE``); on a
  cluster its DDL runs ``ON CLUSTER`` (``CLUSTER``). It reads system.tables (migration 0006, retention) and
  system.clusters (cluster mode); a server that sets ``select_from_system_db_requires_grant`` needs those grants.
- the reader (``RTAP_CLICKHOUSE_READONLY_USER``): dashboards, Metabase, ``rtap sql``, ``rtap reconcile``,
  ``rtap dlq``, ``rtap status``. SELECT only, under the ``rtap_readonly`` profile of
  deploy/compose/clickhouse/users.d/rtap-users.xml (readonly=1 and the read limits), which is where the compose
  stack grants the same.

tests/unit/warehouse/test_grants.py parses every statement the code sends (the sink's, the migrations' in both
modes, retention, the dashboards' panels, the operator commands') with ClickHouse's own parser and checks that
each account's grants cover every table and operation it uses. :func:`grant_statements` renders them for a
team's existing server (``rtap migrate --print-grants``).
"""

from __future__ import annotations

from dataclasses import dataclass

from rtap.settings import WarehouseSettings
from rtap.warehouse import sql as sqltext

PREVIOUS_SYSTEM_DATABASE = "real_time_analytics"  # migration 0006: the previous system's view over rtap's


@dataclass(frozen=True)
class Grant:
    """``GRANT <privileges> ON <target>``; ``{db}`` in the target is the rtap database."""

    privileges: tuple[str, ...]
    target: str

    def on(self, database: str) -> str:
        return self.target.replace("{db}", database)


WRITER: tuple[Grant, ...] = (
    Grant(
        (
            "SELECT",
            "INSERT",
            "CREATE DATABASE",
            "CREATE TABLE",
            "CREATE VIEW",
            "ALTER ADD COLUMN",
            "ALTER ORDER BY",
            "ALTER TTL",
            "ALTER VIEW MODIFY QUERY",  # migration 0013 adds a column to a materialized view's query
        ),
        "{db}.*",
    ),
    Grant(("SELECT", "CREATE DATABASE", "CREATE VIEW"), f"{PREVIOUS_SYSTEM_DATABASE}.*"),
    Grant(("SELECT",), "system.tables"),
    Grant(("CREATE TEMPORARY TABLE",), "*.*"),
)
# Only in cluster mode (RTAP_CLICKHOUSE_CLUSTER): ON CLUSTER DDL, and the shard count migrate checks.
WRITER_ON_CLUSTER: tuple[Grant, ...] = (Grant(("CLUSTER",), "*.*"), Grant(("SELECT",), "system.clusters"))
READER: tuple[Grant, ...] = (
    Grant(("SELECT",), "{db}.*"),
    Grant(("SELECT",), f"{PREVIOUS_SYSTEM_DATABASE}.*"),
    Grant(("SELECT",), "system.columns"),  # rtap dlq replay: whether dead_letters has raw_size yet
)


def writer_grants(settings: WarehouseSettings) -> tuple[Grant, ...]:
    return WRITER + (WRITER_ON_CLUSTER if settings.cluster else ())


def grant_statements(settings: WarehouseSettings) -> list[str]:
    """The GRANT statements for the configured writer and reader (ON CLUSTER in cluster mode).

    The accounts themselves are the team's to create (``CREATE USER``, with the reader's profile: readonly=1 and
    rtap's read limits, as users.d/rtap-users.xml sets them); GRANT does not apply to users defined in XML.
    """
    cluster = f" ON CLUSTER {sqltext.quote_string(settings.cluster)}" if settings.cluster else ""
    statements: list[str] = []
    for user, grants in (
        (settings.user, writer_grants(settings)),
        (settings.readonly_user, READER),
    ):
        for grant in grants:
            statements.append(
                f"GRANT{cluster} {', '.join(grant.privileges)} ON {grant.on(settings.database)} "
                f"TO {sqltext.quote_identifier(user)}"
            )
    return statements
