"""The ClickHouse warehouse: one client interface over embedded chDB and a ClickHouse server.

``create_client(settings)`` returns a :class:`WarehouseClient` for ``settings.warehouse.backend``.
Backends and the socket channel are imported lazily, so importing this package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rtap.warehouse.client import WarehouseClient, create_client

if TYPE_CHECKING:
    from rtap.settings import Settings
    from rtap.warehouse.channel import ChannelServer

__all__ = ["WarehouseClient", "create_client", "serve_channel"]


def serve_channel(client: WarehouseClient, settings: Settings) -> ChannelServer:
    """Serve read-only queries on the owning process's chDB engine; see :mod:`rtap.warehouse.channel`."""
    from rtap.warehouse.channel import serve_channel as serve

    return serve(client, settings)
