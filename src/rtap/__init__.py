"""rtap: real-time clickstream analytics on Kafka, Spark Structured Streaming and ClickHouse.

The package's folders are its layers (README.md, "Layout"; import-linter keeps imports pointing down):

- the product, one folder per stage of the pipeline: ``contract``, ``generate``, ``ingest``, ``stream``,
  ``warehouse``, ``dashboard``, ``metrics``;
- ``runtime``: the processes that run it on one machine (Kafka brokers, Spark, ``rtap up``);
- ``ops``: the tools an operator runs against a pipeline (validate, reconcile, dead letters);
- the foundation, single modules: ``settings``, ``errors``, ``console``, ``kafka_admin``, ``http_json``.
"""

__version__ = "0.1.0"
