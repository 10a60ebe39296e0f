"""rtap: real-time clickstream analytics on Kafka, Spark Structured Streaming and ClickHouse."""

__version__ = "0.1.0"
