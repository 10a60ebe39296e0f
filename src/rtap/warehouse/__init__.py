"""The ClickHouse warehouse: one client interface over embedded chDB and a ClickHouse server.

``create_client(settings)`` returns a :class:`WarehouseClient` for ``settings.warehouse.backend``. The base
class (client.py) knows no backend; the backends (chdb/, server/) build on it, and only this face picks one.
Backends are imported when a client is made, so importing this package stays cheap.
``MIN_SERVER_VERSION``: the oldest ClickHouse server rtap runs on (rtap.warehouse.version says why).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rtap.warehouse.client import WarehouseClient
from rtap.warehouse.version import MIN_SERVER_VERSION

if TYPE_CHECKING:
    from rtap.settings import Settings
    from rtap.warehouse.chdb.channel import ChannelServer

__all__ = ["MIN_SERVER_VERSION", "WarehouseClient", "create_client", "serve_channel"]


def create_client(settings: Settings, *, readonly: bool = False) -> WarehouseClient:
    """A client for the configured backend (``settings.warehouse.backend``).

    For chDB, the first process to open ``settings.paths.chdb`` owns it; in any other process this
    returns a read-only client that queries through the owner's local socket.
    """
    if settings.warehouse.backend == "server":
        from rtap.warehouse.server.client import ServerClient

        return ServerClient(settings.warehouse, readonly=readonly)
    from rtap.warehouse.chdb import open_chdb

    return open_chdb(settings, readonly=readonly)


def serve_channel(client: WarehouseClient, settings: Settings) -> ChannelServer:
    """Serve read-only queries on the owning process's chDB engine; see :mod:`rtap.warehouse.chdb.channel`."""
    from rtap.warehouse.chdb import serve_channel as serve

    return serve(client, settings)
