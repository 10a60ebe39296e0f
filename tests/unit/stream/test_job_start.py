"""Where the job starts, and what it says when a batch fails (``rtap.stream.job``)."""

from __future__ import annotations

from pathlib import Path

from rtap.stream.job import planned_batches, python_error_line


def test_only_batches_spark_planned_make_the_checkpoint_decide(tmp_path: Path) -> None:
    assert planned_batches(tmp_path) == []  # no checkpoint at all
    offsets = tmp_path / "offsets"
    offsets.mkdir()
    # Spark makes the folder before offsets/0: a first attempt that failed in between planned nothing.
    (offsets / ".0.crc.tmp").write_text("")
    assert planned_batches(tmp_path) == []
    (offsets / "0").write_text("v1")
    (offsets / "1").write_text("v1")
    assert planned_batches(tmp_path) == [0, 1]


# What Spark relays when foreachBatch raised in Python: py4j's message, the traceback, then the JVM's stack.
PY4J = """An exception was raised by the Python Proxy. Return Message: Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/py4j/clientserver.py", line 617, in _call_proxy
    return_value = getattr(self.pool[obj_id], method)(*params)
  File "/work/src/rtap/stream/kafka.py", line 90, in publish
    raise BrokerError(f"dead-letter publish to {self._topic} failed: {exc}") from exc
rtap.errors.BrokerError: dead-letter publish to clickstream.events.dlq failed: Message size too large

\tat py4j.Protocol.getReturnValue(Protocol.java:476)
"""


def test_a_failed_batch_is_named_by_its_python_exception_not_by_traceback() -> None:
    assert python_error_line(RuntimeError(PY4J)) == (
        "rtap.errors.BrokerError: dead-letter publish to clickstream.events.dlq failed: Message size too large"
    )
    assert python_error_line(RuntimeError("Connection refused\nmore")) == "Connection refused"
