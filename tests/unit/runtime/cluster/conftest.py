"""The cluster layout the cluster tests build their nodes from: fixed ports, nothing is started."""

from __future__ import annotations

import pytest

from rtap.runtime.cluster.layout import BrokerPorts, ClusterLayout


@pytest.fixture
def layout() -> ClusterLayout:
    return ClusterLayout(
        host="127.0.0.1",
        brokers=(BrokerPorts(19092, 19093), BrokerPorts(19094, 19095), BrokerPorts(19096, 19097)),
        master_port=17077,
        master_ui_port=18080,
        worker_ports=(17101, 17102),
        worker_ui_ports=(18101, 18102),
    )
