"""``rtap up``'s console: the operator sees rtap's steps and warnings; everything else lands in the log file.

Each case runs in a child process, because the routing redirects the process's descriptors 1 and 2. The child
writes the way each noisy source does: a native write to descriptor 2 (librdkafka), a child process inheriting
stdout and stderr (Spark's JVM), Python logging at every level, a stray print().
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

from rtap.runtime.process import MAX_LINE_BYTES
from rtap.runtime.stack.console import LOG_FILE

SCRIPT = textwrap.dedent(
    """
    import logging, os, subprocess, sys
    from pathlib import Path
    from rtap.settings import Settings
    from rtap.runtime.stack.console import operator_output

    settings = Settings(data_dir=Path(sys.argv[1]))
    with operator_output(settings, verbose=sys.argv[2] == "verbose") as output:
        output.console.done("ClickHouse ready")
        os.write(2, b"%4|1796196836.382|GETPID|rdkafka#producer-5| Coordinator load in progress\\n")
        subprocess.run(["sh", "-c", "echo 'WARN NativeCodeLoader: no native-hadoop' >&2; echo 'JVM stdout'"])
        logging.getLogger("rtap.stream").info("batch 7: 1000 records -> 990 events")
        logging.getLogger("rtap.stream").warning("job restarted after a failed batch")
        logging.getLogger("py4j.clientserver").error("exception while executing the Python Proxy")
        # py4j's java_gateway logs a dead JVM through the root logger (logging.exception at module level).
        py4j_file = os.path.join("site-packages", "py4j", "java_gateway.py")
        logging.getLogger().handle(
            logging.LogRecord("root", logging.ERROR, py4j_file, 1060, "Exception while sending command.", None, None)
        )
        print("a stray print")
        os.write(1, b"x" * int(sys.argv[3]) + b"\\n")
        output.console.line("last console line")
    print("after the block")
    os.write(2, b"%3|late|FAIL|rdkafka#producer-7| Connect failed\\n")
    """
)
STAMP = r"\d\d:\d\d:\d\d"


def run_up_console(tmp_path: Path, *, verbose: bool = False, long_line: int = 10) -> tuple[str, str, str]:
    """The child's stdout, stderr and log file."""
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), "verbose" if verbose else "quiet", str(long_line)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout, result.stderr, (tmp_path / "logs" / LOG_FILE).read_text()


def test_the_console_gets_rtap_steps_and_warnings_only(tmp_path: Path) -> None:
    stdout, stderr, _log = run_up_console(tmp_path)
    lines = stdout.splitlines()
    assert lines[0] == "✓ ClickHouse ready"
    assert re.fullmatch(f"{STAMP} WARNING rtap.stream: job restarted after a failed batch", lines[1])
    assert lines[2:] == ["last console line", "after the block"]
    assert stderr == ""


def test_everything_else_is_in_the_log_file(tmp_path: Path) -> None:
    _stdout, _stderr, log = run_up_console(tmp_path)
    for expected in (
        "rtap.output: %4|1796196836.382|GETPID|rdkafka#producer-5| Coordinator load in progress",
        "rtap.output: WARN NativeCodeLoader: no native-hadoop",
        "rtap.output: JVM stdout",
        "INFO rtap.stream: batch 7: 1000 records -> 990 events",
        "WARNING rtap.stream: job restarted after a failed batch",
        "ERROR py4j.clientserver: exception while executing the Python Proxy",
        "ERROR root: Exception while sending command.",
        "rtap.output: a stray print",
        "%3|late|FAIL|rdkafka#producer-7| Connect failed",  # after the block: native output still goes here
    ):
        assert expected in log, expected
    assert "after the block" not in log


def test_verbose_brings_the_per_batch_lines_back(tmp_path: Path) -> None:
    stdout, _stderr, _log = run_up_console(tmp_path, verbose=True)
    assert re.search(f"^{STAMP} INFO rtap.stream: batch 7: 1000 records -> 990 events$", stdout, re.MULTILINE)
    assert "GETPID" not in stdout
    assert "NativeCodeLoader" not in stdout


def test_each_run_starts_a_new_log_and_keeps_the_previous_one(tmp_path: Path) -> None:
    run_up_console(tmp_path)
    run_up_console(tmp_path, verbose=True)
    assert "batch 7" in (tmp_path / "logs" / f"{LOG_FILE}.1").read_text()
    assert (tmp_path / "logs" / LOG_FILE).read_text().count("job restarted") == 1


def test_an_endless_line_is_cut_into_bounded_pieces(tmp_path: Path) -> None:
    length = MAX_LINE_BYTES * 3 + 5
    _stdout, _stderr, log = run_up_console(tmp_path, long_line=length)
    pieces = [line.split("rtap.output: ", 1)[1] for line in log.splitlines() if "rtap.output: x" in line]
    assert "".join(pieces) == "x" * length
    assert max(len(piece) for piece in pieces) == MAX_LINE_BYTES
