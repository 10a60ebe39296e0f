"""The status line of ``rtap up``: figures folded from ``pipeline_batches``, laid out for terminals and logs."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console

from rtap.runtime.stack.console import OperatorConsole
from rtap.runtime.stack.statusline import Batch, PipelineFigures, StatusLine, plain_line, terminal_line
from rtap.settings import Settings, WarehouseSettings
from rtap.warehouse import WarehouseClient, create_client
from rtap.warehouse.migrate import apply_migrations
from tests.support.seed import seed_pipeline

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def batch(batch_id: int, at_s: float, rows: int, *, dead: int = 0, late: int = 0, duplicates: int = 0) -> Batch:
    return Batch(batch_id, T0 + timedelta(seconds=at_s), rows, dead, late, duplicates, kafka_lag=655, freshness_ms=1400)


def test_the_rate_divides_by_the_time_that_has_data() -> None:
    figures = PipelineFigures(started=T0)
    figures.add(batch(0, 2, 500))
    assert figures.figures(T0 + timedelta(seconds=4)).events_per_s == 125.0  # 500 records in 4 s, not in 10
    for n, (at, rows) in enumerate([(12, 257), (17, 11_784), (19, 5_671)], start=1):
        figures.add(batch(n, at, rows))
    assert figures.figures(T0 + timedelta(seconds=20)).events_per_s == pytest.approx((257 + 11_784 + 5_671) / 10)
    stalled = figures.figures(T0 + timedelta(seconds=40))
    assert stalled.events_per_s == 0
    assert stalled.last_batch_age_s(T0 + timedelta(seconds=40)) == 21


def test_totals_count_every_batch_seen() -> None:
    figures = PipelineFigures(started=T0)
    for n in range(5):
        figures.add(batch(n, n, 1000, dead=3, late=2, duplicates=5))
    shown = figures.figures(T0 + timedelta(seconds=5))
    assert (shown.batches, shown.dead_letters, shown.late, shown.duplicates) == (5, 15, 10, 25)


def test_the_plain_line_names_every_figure_with_its_unit() -> None:
    figures = PipelineFigures(started=T0)
    figures.add(batch(41, 9.2, 10_020, dead=120, late=60, duplicates=150))
    line = plain_line(figures.figures(T0 + timedelta(seconds=10)), T0 + timedelta(seconds=10))
    assert line.endswith(
        "status: 1,002 events/s, Kafka lag 655 records, freshness 1.4 s; since start 120 dead letters, 60 late, "
        "150 duplicates in 1 batches; last batch 41 0.8 s ago"
    )
    assert "\n" not in line


@pytest.mark.parametrize("width", [40, 80, 160])
def test_the_terminal_line_is_one_line_at_any_width(width: int) -> None:
    figures = PipelineFigures(started=T0)
    figures.add(batch(1234, 9.2, 10_020, dead=120, late=60, duplicates=150))
    screen = io.StringIO()
    Console(file=screen, width=width, force_terminal=True, color_system=None).print(
        terminal_line(figures.figures(T0 + timedelta(seconds=10)), T0 + timedelta(seconds=10), width)
    )
    (line,) = screen.getvalue().splitlines()
    assert line.startswith("● 1,002 events/s · lag 655 records")
    assert len(line) <= width
    assert line.endswith("…") == (width < 120)


def test_before_the_first_batch_the_line_says_what_it_waits_for() -> None:
    figures = PipelineFigures(started=T0).figures(T0 + timedelta(seconds=12))
    assert plain_line(figures, T0).endswith("status: waiting for the first micro-batch (12 s)")
    assert terminal_line(figures, T0, 80).plain == "● waiting for the first micro-batch (12 s)…"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WarehouseClient]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("status"), warehouse=WarehouseSettings(backend="chdb"))
    with create_client(settings) as client:
        apply_migrations(client)
        yield client


def test_the_line_reads_only_batches_committed_after_it_started(warehouse: WarehouseClient) -> None:
    now = datetime.now(UTC)
    seed_pipeline(warehouse, now - timedelta(seconds=60), batches=30)  # an earlier run on the same checkpoint
    screen = io.StringIO()
    status = StatusLine(OperatorConsole(Console(file=screen, force_terminal=False)), warehouse, "q-test")
    status.poll()
    assert "waiting for the first micro-batch" in str(status.render(now))

    seed_pipeline(warehouse, now, batches=3, first_batch=30)  # batches 30..32, 10 s apart, the last one now
    status.poll()
    line = str(status.render(now + timedelta(seconds=1)))
    # Each seeded batch: input 1000 + id, 3 dead letters, 2 late, 5 duplicates, lag 40 + id, freshness 1.5 s.
    assert "since start 9 dead letters, 6 late, 15 duplicates in 3 batches; last batch 32 1.0 s ago" in line
    assert "Kafka lag 72 records, freshness 1.5 s" in line
    status.poll()  # nothing new: nothing counted twice
    assert "in 3 batches" in str(status.render(now + timedelta(seconds=1)))
