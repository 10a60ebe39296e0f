"""What the tests share, in one package: never a conftest or another test module to import from.

- ``plugin``: registered with ``-p tests.support.plugin`` (pyproject.toml): the fixtures every layer may use
  (``unique_name``, the in-process ``spark`` session) and each layer's marker, given by directory;
- ``paths``: the repository root and free loopback ports;
- ``records``: Kafka records and contract events as the stream job's transforms see them;
- ``strategies``: hypothesis strategies of valid and broken events;
- ``clickstream``: generator runs and their records, for the generate tests;
- ``pipeline``: a private broker, an isolated pipeline's settings, the stream job and ``rtap up`` as processes,
  the tables against the generator's truth;
- ``faults``, ``browser``, ``terminal``, ``seed``: fault injection, headless Chromium, tmux, dashboard rows;
- ``metabase``: a fake Metabase replaying recorded API responses (``metabase_responses/``).
"""

import pkgutil

import pytest

# Assertions in the shared helpers (e.g. pipeline.assert_tables_equal_truth) explain their failures like a test's.
pytest.register_assert_rewrite(*(f"{__name__}.{module.name}" for module in pkgutil.iter_modules(__path__)))
