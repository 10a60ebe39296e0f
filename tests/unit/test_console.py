"""Output that survives pipes, files, long paths and narrow terminals (issue #16).

`make test` from a clone in a longer folder failed because rich wrapped `<path>: compatible with contract v1`
at 80 columns when stdout was a pipe. These run the real `rtap` entry point in a child process: into a pipe,
into a pseudo-terminal 40 columns wide, and with paths of well over 100 characters.
"""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from rtap.console import console, inert
from rtap.contract.model import load_schema

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def long_path(root: Path, name: str) -> Path:
    """A file below ``root`` whose path is well over 100 characters, with brackets rich would read as markup."""
    folder = root / ("a-folder-with-a-long-name-like-a-ci-checkout-" * 3) / "[not-markup]"
    folder.mkdir(parents=True)
    path = folder / name
    assert len(str(path)) > 150
    return path


def rtap_in_pipe(*args: str, columns: int = 40) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "COLUMNS": str(columns), "FORCE_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "rtap", *args], env=environment, capture_output=True, text=True, timeout=60
    )


def rtap_in_terminal(*args: str, columns: int = 40) -> tuple[int, str]:
    """Run rtap on a pseudo-terminal ``columns`` wide; its exit code and everything it wrote, escapes removed."""
    environment = {**os.environ, "COLUMNS": str(columns), "LINES": "24", "TERM": "xterm-256color"}
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "rtap", *args], env=environment, stdin=follower, stdout=follower, stderr=follower
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 60
    poller = select.poll()  # not select(): this test process may hold more than 1024 descriptors (chDB's threads)
    poller.register(leader, select.POLLIN)
    while time.monotonic() < deadline:
        ready = poller.poll(500)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed its side
                break
            if not chunk:
                break
            chunks.append(chunk)
        elif process.poll() is not None:
            break
    os.close(leader)
    code = process.wait(timeout=10)
    # The terminal turns each "\n" into "\r\n"; a line break rich inserted would show as one more "\r\n".
    return code, ANSI.sub("", b"".join(chunks).decode()).replace("\r\n", "\n")


@pytest.fixture
def candidate(tmp_path: Path) -> Path:
    path = long_path(tmp_path, "compatible-candidate.json")
    path.write_bytes(orjson.dumps(load_schema(1)))
    return path


def test_a_long_path_is_one_line_in_a_pipe(candidate: Path) -> None:
    result = rtap_in_pipe("contract", "check", "--new", str(candidate))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{candidate}: compatible with contract v1 (only new optional fields)\n"
    assert "\x1b[" not in result.stdout  # FORCE_COLOR must not put escape codes into a pipe


def test_a_long_path_is_one_line_in_a_narrow_terminal(candidate: Path) -> None:
    code, output = rtap_in_terminal("contract", "check", "--new", str(candidate))
    assert code == 0, output
    assert output == f"{candidate}: compatible with contract v1 (only new optional fields)\n"


@pytest.mark.parametrize("runner", [rtap_in_pipe, rtap_in_terminal])
def test_a_bad_value_is_one_line_and_exit_2(runner: object, tmp_path: Path) -> None:
    missing = long_path(tmp_path, "no-such-contract.json")
    if runner is rtap_in_pipe:
        result = rtap_in_pipe("contract", "check", "--new", str(missing))
        code, output = result.returncode, result.stderr
        assert result.stdout == ""
    else:
        code, output = rtap_in_terminal("contract", "check", "--new", str(missing))
    assert code == 2
    assert output == (
        f"error: Invalid value for '--new': file '{missing}' does not exist. (see `rtap contract check --help`)\n"
    )


def test_a_deliberate_error_is_one_line_with_its_brackets(tmp_path: Path) -> None:
    broken = long_path(tmp_path, "broken.json")
    broken.write_text("{not json")
    result = rtap_in_pipe("contract", "check", "--new", str(broken))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert str(broken) in lines[0]


def test_off_a_terminal_markup_is_text_and_nothing_wraps() -> None:
    buffer = io.StringIO()
    out = console(file=buffer, markup=True)
    sentence = "word " * 60
    out.print(f"[green]✓[/] {sentence}")
    assert buffer.getvalue() == f"✓ {sentence}\n"


def test_values_print_literally_unless_markup_is_asked_for() -> None:
    buffer = io.StringIO()
    console(file=buffer).print("/data/[bold]/x")
    assert buffer.getvalue() == "/data/[bold]/x\n"


def test_inert_escapes_what_a_terminal_acts_on_and_keeps_what_it_is_told_to() -> None:
    hostile = "a\x1b[31mb\u009b2J\x07\u202eevil\r\u2028x\tTAB\nnext 日本語 café"
    assert inert(hostile) == "a\\x1b[31mb\\x9b2J\\x07\\u202eevil\\r\\u2028x\\tTAB\\nnext 日本語 café"
    assert inert(hostile, keep="\n\t") == "a\\x1b[31mb\\x9b2J\\x07\\u202eevil\\r\\u2028x\tTAB\nnext 日本語 café"
