"""Embedded ClickHouse (chDB): this process's engine (client.py), or the owner's read-only socket (channel.py).

chDB lets one process open a data directory. :func:`open_chdb` gives the first process the engine and every
other one a :class:`~rtap.warehouse.chdb.channel.ChannelClient` on the owner's socket; ownership.py is the lock
that decides which, errors.py maps chDB's messages onto rtap's error tree.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rtap.errors import RetryableWarehouseError
from rtap.warehouse.chdb.channel import ChannelClient, serve_channel, socket_path
from rtap.warehouse.chdb.client import ChdbClient, own_engine
from rtap.warehouse.chdb.ownership import owner_pid

if TYPE_CHECKING:
    from rtap.settings import Settings
    from rtap.warehouse.client import WarehouseClient

__all__ = ["ChannelClient", "ChdbClient", "open_chdb", "serve_channel"]

_POLL_S = 0.1


def open_chdb(settings: Settings, *, readonly: bool = False) -> WarehouseClient:
    """This process's client on the chDB directory, or a channel client if another process owns it.

    Waits up to ``connect_timeout_s`` for an owner that holds the lock but does not answer on its
    socket yet (it may be starting, or finishing a short command such as ``rtap migrate``).
    """
    directory = settings.paths.chdb
    deadline = time.monotonic() + settings.warehouse.connect_timeout_s
    while True:
        if (own := own_engine(settings, readonly=readonly)) is not None:
            return own
        channel = ChannelClient.connect(socket_path(settings), settings, owner_pid=owner_pid(directory))
        if channel is not None:
            return channel
        if time.monotonic() >= deadline:
            raise RetryableWarehouseError(
                f"the chDB data directory {directory} is owned by rtap process {owner_pid(directory)}, "
                f"which serves no read-only socket at {socket_path(settings)}; wait for it to finish or stop it"
            )
        time.sleep(_POLL_S)
