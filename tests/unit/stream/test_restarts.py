"""The stream job's restarts without a JVM: failures in a row, the backoff, the operator's lines, the state file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rtap.stream.restarts import MAX_BACKOFF_S, FailuresInARow, JobState, describe_jvm_exit, out_of_memory


def test_failures_in_a_row_end_the_job_at_the_limit() -> None:
    failures = FailuresInARow(limit=3)
    for expected in (1, 2):
        failures.failed(committed_since_last_start=False)
        assert failures.count == expected
        assert not failures.exhausted
    failures.failed(committed_since_last_start=False)
    assert failures.exhausted


def test_a_committed_batch_makes_the_next_failure_the_first_again() -> None:
    failures = FailuresInARow(limit=3)
    failures.failed(committed_since_last_start=False)
    failures.failed(committed_since_last_start=False)
    failures.failed(committed_since_last_start=True)  # the job had recovered before this one
    assert failures.count == 1
    assert not failures.exhausted


def test_a_query_stopped_for_a_new_cap_after_a_commit_makes_the_next_failure_the_first() -> None:
    failures = FailuresInARow(limit=3)
    failures.failed(committed_since_last_start=False)
    failures.failed(committed_since_last_start=False)
    failures.recovered()  # the query committed batches, then the job started it again with another cap
    failures.failed(committed_since_last_start=False)  # the new query fails before its first commit
    assert failures.count == 1


def test_a_limit_of_one_gives_up_at_the_first_failure() -> None:
    failures = FailuresInARow(limit=1)
    failures.failed(committed_since_last_start=True)
    assert failures.exhausted


def test_the_backoff_doubles_and_is_bounded() -> None:
    failures = FailuresInARow(limit=100)
    waits = []
    for _ in range(8):
        failures.failed(committed_since_last_start=False)
        waits.append(failures.backoff_s)
    assert waits[:4] == [2.0, 4.0, 8.0, 16.0]
    assert max(waits) == MAX_BACKOFF_S


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (-9, "Spark's JVM was killed by signal 9"),
        (3, "Spark's JVM ran out of memory (java.lang.OutOfMemoryError, exit code 3)"),
        (52, "Spark's JVM ran out of memory (java.lang.OutOfMemoryError, exit code 52)"),
        (1, "Spark's JVM exited with code 1"),
        (None, "Spark's JVM stopped answering"),
    ],
)
def test_the_jvm_exit_is_named_by_its_status(code: int | None, reason: str) -> None:
    assert describe_jvm_exit(code) == reason


def test_the_restart_is_one_line_with_the_cause_the_wait_and_the_count() -> None:
    failures = FailuresInARow(limit=5)
    failures.failed(committed_since_last_start=True)
    line = failures.restart_line(describe_jvm_exit(-9))
    assert line == (
        "Spark's JVM was killed by signal 9: restarting the stream job from its checkpoint in 2 s "
        "(failure 1 in a row; the job stops at 5)"
    )


def test_a_restart_that_plans_the_batch_again_smaller_says_so_instead_of_the_limit() -> None:
    failures = FailuresInARow(limit=1)
    failures.failed(committed_since_last_start=True)
    line = failures.restart_line(describe_jvm_exit(52), smaller=True)
    assert line.endswith("(failure 1 in a row; the batch is planned again smaller)")


@pytest.mark.parametrize(
    ("reason", "memory"),
    [
        (describe_jvm_exit(3), True),
        (describe_jvm_exit(52), True),
        # a task's failure as a batch's error relays it (measured: Arrow's and netty's, in a 1 GiB driver)
        ("batch failed (org.apache.arrow.memory.OutOfMemoryException: Failure allocating buffer.)", True),
        ("io.netty.util.internal.OutOfDirectMemoryError: failed to allocate 536870912 byte(s)", True),
        (describe_jvm_exit(-9), False),  # the kernel's OOM killer, or anyone's kill -9: not known to be memory
        ("batch failed (Code: 243. DB::Exception: Cannot reserve 1.00 MiB, not enough space)", False),
    ],
)
def test_out_of_memory_is_told_by_the_jvms_exit_or_the_errors_name(reason: str, memory: bool) -> None:
    assert out_of_memory(reason) is memory


@pytest.mark.parametrize(
    ("reason", "advice"),
    [
        (describe_jvm_exit(3), "RTAP_STREAM_DRIVER_MEMORY"),
        (describe_jvm_exit(52), "RTAP_STREAM_DRIVER_MEMORY"),
        (describe_jvm_exit(-9), "OOM killer"),
        ("batch failed (Code: 243. DB::Exception: Cannot reserve 1.00 MiB, not enough space)", "see the log"),
    ],
)
def test_giving_up_is_one_line_saying_why_and_what_to_do(reason: str, advice: str) -> None:
    failures = FailuresInARow(limit=2)
    failures.failed(committed_since_last_start=False)
    failures.failed(committed_since_last_start=False)
    line = failures.give_up_line(reason)
    assert line.startswith(f"stream job failed 2 times in a row without committing a batch; last: {reason}; ")
    assert advice in line
    assert "start again" in line
    assert "\n" not in line


def test_the_state_file_round_trips_and_a_damaged_one_reads_as_none(tmp_path: Path) -> None:
    path = tmp_path / "run" / "stream-job.json"
    state = JobState(pid=os.getpid(), started_at="2026-12-02T18:00:00+00:00")
    state.write(path)
    state.restarts, state.last_restart_at, state.last_error = 2, "2026-12-02T18:05:00+00:00", "batch failed (x)"
    state.write(path)  # rewritten in place (a rename: a reader never sees half a file)
    assert JobState.read(path) == state
    assert not list(path.parent.glob("*.tmp"))
    path.write_text("{not json")
    assert JobState.read(path) is None
    assert JobState.read(tmp_path / "missing.json") is None


def test_the_state_of_a_process_that_is_gone_is_not_running() -> None:
    assert JobState(pid=os.getpid(), started_at="").running()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert not JobState(pid=int(gone.stdout), started_at="").running()
