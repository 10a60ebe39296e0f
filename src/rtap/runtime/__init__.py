"""What runs the pipeline: the processes rtap starts and supervises, not the pipeline itself.

- ``broker``: a local Kafka broker (KRaft) from Apache Kafka's jars, as a child process;
- ``cluster``: the cluster profile on one machine (three brokers, a Spark master and two workers);
- ``jvm``: the JVMs' class-data archives (start-up time);
- ``stack``: ``rtap up`` and ``rtap status``, the whole pipeline on one machine.

The product (``rtap.contract``, ``generate``, ``ingest``, ``stream``, ``warehouse``, ``dashboard``, ``metrics``)
runs the same on a managed Kafka, a Spark cluster and a ClickHouse server; only ``stack`` composes it with
the processes here. The import contract in pyproject.toml (``make lint``) keeps that direction.
"""
