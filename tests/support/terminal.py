"""A real terminal for ``rtap up``: a tmux session, its screen as text, and the screen as a picture.

tmux is a terminal emulator: the program under test gets a pseudo-terminal of a chosen size, and
``capture-pane`` returns what a person would see, after the terminal folded long lines (``-J`` joins the folded
pieces again, as copying from a terminal does). ``make system-deps`` installs tmux with Chromium.
"""

from __future__ import annotations

import io
import os
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page
from rich.console import Console
from rich.terminal_theme import MONOKAI
from rich.text import Text

TMUX = "tmux"

# What `rtap up` printed before issue #16, among others: none of it is for the operator's console.
NOISE = (
    "NativeCodeLoader",
    "log4j",
    "Setting default log level",
    "Truncated the string representation",
    "Current batch is falling behind",
    "Failed to cancel job group",
    "GETPID",
    "%4|",
    "%6|",
    "WARN ",
    "rtap.stream: batch",
    "Traceback",
)


class TmuxSession:
    """One detached tmux session running ``command`` in a window ``columns`` x ``rows``, on a tmux server of its
    own: a server started with the test process's environment would hand its COLUMNS and LINES (set by then,
    e.g. 80 x 24) to the program, which would lay itself out for a terminal it does not have."""

    def __init__(self, command: list[str], env: dict[str, str], *, columns: int, rows: int, cwd: Path) -> None:
        self.name = f"rtap-test-{uuid.uuid4().hex[:8]}"
        self.columns = columns
        self._env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/"), **env}
        self._run("-f", "/dev/null", "new-session", "-d", "-s", self.name, "-x", str(columns), "-y", str(rows))
        # The pane stays after the command ends, so its last screen can be read.
        self._run("set-option", "-t", self.name, "remain-on-exit", "on")
        self._run("respawn-pane", "-k", "-t", self.name, "-c", str(cwd), *command)

    def _run(self, *args: str) -> str:
        result = subprocess.run(
            [TMUX, "-L", self.name, *args], env=self._env, check=True, capture_output=True, text=True
        )
        return result.stdout

    def screen(self, *, colours: bool = False, joined: bool = False, history: int = 0) -> str:
        """The pane's text; ``colours`` keeps the escape codes, ``joined`` undoes the terminal's folding."""
        args = ["capture-pane", "-p", "-t", self.name, "-S", str(-history)]
        args += ["-e"] if colours else []
        args += ["-J"] if joined else []
        return self._run(*args)

    def wait_for(self, predicate: Callable[[str], bool], timeout_s: float, what: str) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            shown = self.screen(history=200)
            if predicate(shown):
                return shown
            time.sleep(1.0)
        raise AssertionError(f"the terminal never showed {what} within {timeout_s:.0f} s:\n{self.screen(history=200)}")

    def resize(self, columns: int) -> None:
        self._run("resize-window", "-t", self.name, "-x", str(columns))
        self.columns = columns

    def keys(self, *keys: str) -> None:
        self._run("send-keys", "-t", self.name, *keys)

    def close(self) -> None:
        subprocess.run([TMUX, "-L", self.name, "kill-server"], env=self._env, check=False, capture_output=True)


def screenshot(page: Page, screen_with_colours: str, columns: int, path: Path) -> None:
    """The screen as a PNG: rich turns the escape codes into styled HTML, Chromium draws it."""
    recorder = Console(record=True, file=io.StringIO(), width=columns, force_terminal=True, color_system="truecolor")
    recorder.print(Text.from_ansi(screen_with_colours.rstrip("\n")), soft_wrap=True)
    page.set_viewport_size({"width": columns * 9 + 40, "height": 200})
    page.set_content(recorder.export_html(theme=MONOKAI, inline_styles=True))
    page.screenshot(path=str(path), full_page=True)
