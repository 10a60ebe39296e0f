"""The metrics tests reuse the stream tests' in-process SparkSession (one per pytest session)."""
