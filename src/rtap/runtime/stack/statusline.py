"""``rtap up``'s status line: events/s, Kafka lag, freshness, dead letters, late events and duplicates.

On a terminal one line is redrawn every second (rich's Live, so warnings print above it); anywhere else a plain
line is printed every :data:`PLAIN_EVERY_S` seconds, so a log shows progress without a line per micro-batch.

The figures come from ``pipeline_batches``, the commit record the job writes last for every micro-batch: what the
line shows is what the warehouse holds, whichever job object wrote it (a restarted job included). Each poll reads
only the batches committed since the previous one, by the table's key (query_id, batch_id), and keeps
:data:`RATE_WINDOW_S` seconds of them for the rate: the work per poll does not grow with uptime.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self

from rtap.errors import RtapError

if TYPE_CHECKING:
    from rich.live import Live
    from rich.text import Text

    from rtap.runtime.stack.console import OperatorConsole
    from rtap.warehouse import WarehouseClient

RATE_WINDOW_S = 10.0
TERMINAL_EVERY_S = 1.0
PLAIN_EVERY_S = 10.0
# More batches than this between two polls are read over the next polls (a catching-up job commits fast).
MAX_ROWS_PER_POLL = 1000

LAST_BATCH_ID = """
SELECT batch_id FROM {db}.pipeline_batches FINAL
WHERE query_id = {query_id:String}
ORDER BY batch_id DESC LIMIT 1
"""
BATCHES_AFTER = f"""
SELECT batch_id, finished_at, input_rows, dead_letters, late, duplicates, kafka_lag, freshness_ms
FROM {{db}}.pipeline_batches FINAL
WHERE query_id = {{query_id:String}} AND batch_id > {{after:Int64}}
ORDER BY batch_id LIMIT {MAX_ROWS_PER_POLL}
"""


@dataclass(frozen=True)
class Batch:
    """The columns of one ``pipeline_batches`` row the status line uses."""

    batch_id: int
    finished_at: datetime
    input_rows: int
    dead_letters: int
    late: int
    duplicates: int
    kafka_lag: int
    freshness_ms: int | None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Self:
        batch_id, finished, input_rows, dead, late, duplicates, lag, freshness = row
        finished = finished if finished.tzinfo else finished.replace(tzinfo=UTC)
        return cls(batch_id, finished, input_rows, dead, late, duplicates, lag, freshness)


@dataclass(frozen=True)
class Figures:
    """What the line shows. Counts are since the status line started (this ``rtap up``)."""

    batches: int
    events_per_s: float
    dead_letters: int
    late: int
    duplicates: int
    last: Batch | None
    waited_s: float

    def last_batch_age_s(self, now: datetime) -> float | None:
        return None if self.last is None else max(0.0, (now - self.last.finished_at).total_seconds())


class PipelineFigures:
    """The batches seen so far, folded into totals and a rate over the last :data:`RATE_WINDOW_S` seconds."""

    def __init__(self, started: datetime) -> None:
        self._started = started
        self._recent: deque[Batch] = deque()
        self._batches = self._dead_letters = self._late = self._duplicates = 0
        self._last: Batch | None = None

    @property
    def last_batch_id(self) -> int | None:
        return None if self._last is None else self._last.batch_id

    def add(self, batch: Batch) -> None:
        self._batches += 1
        self._dead_letters += batch.dead_letters
        self._late += batch.late
        self._duplicates += batch.duplicates
        self._last = batch
        self._recent.append(batch)

    def figures(self, now: datetime) -> Figures:
        """The figures at ``now``. The rate divides by the time that has data: the window, or less at the start."""
        while self._recent and (now - self._recent[0].finished_at).total_seconds() > RATE_WINDOW_S:
            self._recent.popleft()
        span = min(RATE_WINDOW_S, max(1.0, (now - self._started).total_seconds()))
        rate = sum(batch.input_rows for batch in self._recent) / span
        waited = (now - self._started).total_seconds()
        return Figures(self._batches, rate, self._dead_letters, self._late, self._duplicates, self._last, waited)


def _count(n: float) -> str:
    return f"{n:,.0f}"


def _freshness(batch: Batch) -> str:
    return "n/a" if batch.freshness_ms is None else f"{batch.freshness_ms / 1000:.1f} s"


def terminal_line(figures: Figures, now: datetime, width: int) -> Text:
    """The live line, cut to ``width``: the figures an operator watches first come first, a narrow terminal
    loses the rest (a wrapped live line would leave its first rows behind at every redraw)."""
    from rich.text import Text

    last, age = figures.last, figures.last_batch_age_s(now)
    if last is None or age is None:
        line = Text(f"● waiting for the first micro-batch ({figures.waited_s:.0f} s)…", style="dim")
        line.truncate(width, overflow="ellipsis")
        return line
    stale = age > max(30.0, 3 * RATE_WINDOW_S)
    line = Text()
    line.append("● ", style="red" if stale else "green")
    parts = [
        (f"{_count(figures.events_per_s)} events/s", "bold"),
        (f"lag {_count(last.kafka_lag)} records", ""),
        (f"freshness {_freshness(last)}", ""),
        (f"dead letters {_count(figures.dead_letters)}", "yellow" if figures.dead_letters else ""),
        (f"late {_count(figures.late)}", ""),
        (f"duplicates {_count(figures.duplicates)}", ""),
        (f"batch {last.batch_id:,} {age:.0f} s ago", "red" if stale else "dim"),
    ]
    for index, (text, style) in enumerate(parts):
        if index:
            line.append(" · ", style="dim")
        line.append(text, style=style)
    line.truncate(width, overflow="ellipsis")
    return line


def plain_line(figures: Figures, now: datetime) -> str:
    """The periodic line for logs and pipes: every figure with its unit, one line."""
    last, age = figures.last, figures.last_batch_age_s(now)
    stamp = now.astimezone().strftime("%H:%M:%S")
    if last is None or age is None:
        return f"{stamp} status: waiting for the first micro-batch ({figures.waited_s:.0f} s)"
    return (
        f"{stamp} status: {_count(figures.events_per_s)} events/s, Kafka lag {_count(last.kafka_lag)} records, "
        f"freshness {_freshness(last)}; since start {_count(figures.dead_letters)} dead letters, "
        f"{_count(figures.late)} late, {_count(figures.duplicates)} duplicates in {_count(figures.batches)} batches; "
        f"last batch {last.batch_id} {age:.1f} s ago"
    )


class StatusLine:
    """Polls the warehouse for new batches and shows the figures until :meth:`stop` (a context manager)."""

    def __init__(self, out: OperatorConsole, client: WarehouseClient, query_id: str) -> None:
        self._out = out
        self._client = client
        self._query_id = query_id
        self._every_s = TERMINAL_EVERY_S if out.terminal else PLAIN_EVERY_S
        self._stop = threading.Event()
        self._figures = PipelineFigures(datetime.now(UTC))
        self._live: Live | None = None
        self._problem: str | None = None
        self._after = self._latest_batch_id()
        self._thread = threading.Thread(target=self._run, name="rtap-status-line", daemon=True)

    def _latest_batch_id(self) -> int:
        """Batches committed before this ``rtap up`` (same checkpoint, earlier runs) are not counted."""
        try:
            rows = self._client.query_rows(LAST_BATCH_ID, parameters={"query_id": self._query_id})
        except RtapError as error:
            self._problem = str(error)
            return -1
        return int(rows[0][0]) if rows else -1

    def poll(self) -> None:
        """Read the batches committed since the last poll; a failure is shown on the line, not raised."""
        try:
            rows = self._client.query_rows(BATCHES_AFTER, parameters={"query_id": self._query_id, "after": self._after})
        except RtapError as error:
            self._problem = str(error)
            return
        self._problem = None
        for row in rows:
            batch = Batch.from_row(row)
            self._figures.add(batch)
            self._after = batch.batch_id

    def render(self, now: datetime) -> Text | str:
        figures = self._figures.figures(now)
        if self._out.terminal:
            width = self._out.rich.width
            if self._problem is None:
                return terminal_line(figures, now, width)
            from rich.text import Text

            problem = Text(f"● status unavailable: {self._problem}", style="red")
            problem.truncate(width, overflow="ellipsis")
            return problem
        text = plain_line(figures, now)
        return text if self._problem is None else f"{text} (status unavailable: {self._problem})"

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            self.poll()
            shown = self.render(datetime.now(UTC))
            if self._live is not None:
                self._live.update(shown, refresh=True)
            else:
                self._out.line(str(shown))

    def __enter__(self) -> Self:
        if self._out.terminal:
            from rich.live import Live

            self._live = Live(
                self.render(datetime.now(UTC)),
                console=self._out.rich,
                auto_refresh=False,
                transient=False,
                # The process's stdout and stderr are the log pipe (rtap.runtime.stack.console): leave them alone.
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling and leave the final figures on the console (the last line of a log shows the totals)."""
        self._stop.set()
        self._thread.join(timeout=max(5.0, 2 * self._every_s))
        self.poll()
        final = self.render(datetime.now(UTC))
        if self._live is not None:
            self._live.update(final, refresh=True)
            self._live.stop()
        else:
            self._out.line(str(final))

    def __exit__(self, *_exc: object) -> None:
        self.stop()
