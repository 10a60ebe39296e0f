"""The local Apache Kafka broker: one KRaft node run from the Maven-resolved jars, no Docker.

``rtap kafka start|stop|status`` and ``rtap up`` use :class:`LocalKafka`; the configuration it writes is
built in :mod:`rtap.runtime.broker.config`.
"""

from rtap.runtime.broker.local import BrokerStatus, LocalKafka

__all__ = ["BrokerStatus", "LocalKafka"]
