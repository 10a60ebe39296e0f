"""The metrics tests reuse the stream tests' in-process SparkSession (one per pytest session)."""

from tests.unit.stream.conftest import spark  # noqa: F401  (a fixture, used by test_reasons.py)
