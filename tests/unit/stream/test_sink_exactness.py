"""The sink on real input from elsewhere (issue #22), on the real embedded ClickHouse: an event id is one UUID in
any letter case, and a batch re-cut at other offsets after a lost checkpoint changes no table."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rtap.settings import Settings
from rtap.stream.sink import BatchStats, WarehouseSink
from rtap.warehouse import WarehouseClient, create_client
from rtap.warehouse.migrate import apply_migrations
from tests.support.records import TOPIC, KeptDeadLetters, classify_records, event


class CrashBeforeCommit(WarehouseSink):
    """A job that dies after writing a batch's rows and before its commit record (kill -9 at that instant)."""

    def _commit(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("killed before the commit record")


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[WarehouseClient]:
    with create_client(Settings(data_dir=tmp_path)) as client:
        apply_migrations(client)
        yield client


def sink(client: WarehouseClient, pipeline: str, kind: type[WarehouseSink] = WarehouseSink) -> WarehouseSink:
    return kind(client, Settings().stream, pipeline, KeptDeadLetters(), lambda offsets: {}, topic=TOPIC)


def run_batch(
    target: WarehouseSink,
    batch_id: int,
    records: list[tuple[int, int, object]],
    planned: dict[tuple[str, int], int] | None = None,
) -> BatchStats:
    marks = target.high_water(batch_id)
    classified = classify_records(records, marks, max_record_bytes=65536)
    return target.write(batch_id, classified, datetime.now(UTC), marks, planned)


def spelled(n: int, case: str) -> str:
    uuid = f"abcdef00-0000-4000-8000-{n:012d}"
    return {"upper": uuid.upper(), "lower": uuid, "mixed": uuid[:12].upper() + uuid[12:]}[case]


def view(n: int, case: str) -> dict[str, object]:
    return event(n, f"2026-11-29T12:00:{n % 60:02d}Z", event_id=spelled(n, case), user_id=f"u{n}")


def test_an_event_id_is_one_uuid_in_any_letter_case(warehouse: WarehouseClient) -> None:
    """The issue's case: 1,000 views in upper case, stored; the same re-sent verbatim; then in lower case; then
    new events whose upper- and lower-case copies share a batch. Here 10 and 5 of them."""
    job = sink(warehouse, "case")
    stats = [
        run_batch(job, 0, [(0, i, view(i, "upper")) for i in range(10)]),
        run_batch(job, 1, [(0, 10 + i, view(i, "upper")) for i in range(10)]),  # verbatim, a later batch
        run_batch(job, 2, [(0, 20 + i, view(i, "lower")) for i in range(10)]),  # another spelling, later
        run_batch(job, 3, [(0, 30 + i, view(i, "mixed")) for i in range(10)]),
        run_batch(  # both spellings in one batch, either first
            job,
            4,
            [(0, 40 + 2 * i + k, view(10 + i, case)) for i in range(5) for k, case in enumerate(("upper", "lower"))],
        ),
    ]
    assert [(s.accepted, s.duplicates) for s in stats] == [(10, 0), (0, 10), (0, 10), (0, 10), (5, 5)]
    rows = warehouse.query_rows("SELECT toString(event_id) FROM {db}.events FINAL ORDER BY event_id")
    assert [r[0] for r in rows] == sorted(spelled(n, "lower") for n in range(15))
    assert warehouse.query_rows("SELECT sum(views) FROM {db}.page_views_1m FINAL") == [(15,)]
    assert warehouse.query_rows("SELECT sum(duplicates) FROM {db}.pipeline_batches FINAL") == [(35,)]


def batch_records() -> list[tuple[int, int, object]]:
    """Two partitions: accepted events, a copy within the batch, a late event, a dead letter, a purchase."""
    purchase = event(
        9, "2026-11-29T12:04:30Z", event_type="purchase", product_id="p", price=2.5, quantity=2, order_id="o"
    )
    p0: list[object] = [event(i, f"2026-11-29T12:00:{10 + i}Z", user_id=f"u{i % 4}") for i in range(8)]
    p0[5] = p0[2]  # a copy of an earlier record
    p0[6] = b'{"event_id": "cut short'
    p1: list[object] = [event(100 + i, f"2026-11-29T12:0{i}:20Z", session_id="s2") for i in range(5)]
    p1[3] = event(200, "2026-11-29T11:58:00Z")  # far behind partition 1's mark: late
    p1.append(purchase)
    return [(0, offset, value) for offset, value in enumerate(p0)] + [
        (1, offset, value) for offset, value in enumerate(p1)
    ]


def tables(client: WarehouseClient) -> dict[str, object]:
    """Every table's content as a reader sees it, and the states as the views wrote them (no FINAL)."""
    queries = {
        "events": "SELECT count(), uniqExact(event_id) FROM {db}.events",
        "late_events": "SELECT count() FROM {db}.late_events",
        "dead_letters": "SELECT count(), sum(raw_size) FROM {db}.dead_letters",
        "page_views_1m": "SELECT window_start, page_url, views, unique_users FROM {db}.page_views_1m FINAL"
        " ORDER BY ALL",
        "page_views_1m_state": "SELECT window_start, sum(views) FROM {db}.page_views_1m_state GROUP BY 1 ORDER BY 1",
        "events_1m": "SELECT window_start, event_type, events, users, orders, revenue FROM {db}.events_1m FINAL"
        " ORDER BY ALL",
        "sessions": "SELECT session_id, events, revenue FROM {db}.sessions FINAL ORDER BY 1",
        "batches": "SELECT sum(input_rows), sum(valid), sum(duplicates), sum(late), sum(dead_letters)"
        " FROM {db}.pipeline_batches FINAL",
    }
    return {name: client.query_rows(sql) for name, sql in queries.items()}


def one_clean_run(path: Path, records: list[tuple[int, int, object]]) -> dict[str, object]:
    """Every table after one batch of ``records`` on a fresh warehouse at ``path``."""
    with create_client(Settings(data_dir=path)) as client:
        apply_migrations(client)
        run_batch(sink(client, "clean"), 0, records)
        return tables(client)


def crash_before_commit(client: WarehouseClient, records: list[tuple[int, int, object]]) -> WarehouseSink:
    """A fresh warehouse where a job wrote ``records`` as its first batch and died before the commit record; the
    sink of the job that resumes with a new checkpoint."""
    apply_migrations(client)
    with pytest.raises(RuntimeError, match="killed before the commit record"):
        run_batch(sink(client, "lost", CrashBeforeCommit), 0, records)
    return sink(client, "resumed")  # a new checkpoint: a new pipeline id


@pytest.mark.parametrize("recut", [5, 12], ids=["cut-elsewhere", "cut-the-same"])
def test_a_lost_checkpoint_in_the_middle_of_a_batch_changes_no_table(tmp_path: Path, recut: int) -> None:
    """A job writes a batch's rows and dies before its commit record; its checkpoint is lost, so a new pipeline
    resumes from the last committed batch (here: none) and cuts its batches elsewhere (or the same). Every
    table, the views' state tables included, ends as one clean run leaves it."""
    records = batch_records()
    p0 = [r for r in records if r[0] == 0]
    p1 = [r for r in records if r[0] == 1]

    expected = one_clean_run(tmp_path / "clean", records)
    with create_client(Settings(data_dir=tmp_path / "crash")) as client:
        resumed = crash_before_commit(client, p0[:12] + p1[:4])
        first = [r for r in records if r[1] < recut]
        run_batch(resumed, 0, first)
        run_batch(resumed, 1, [r for r in records if r not in first])
        assert tables(client) == expected

    assert expected["events"] == [(11, 11)]  # 8 + 6 records, less a copy, a dead letter and a late one
    assert expected["late_events"] == [(1,)]
    assert expected["dead_letters"] == [(1, len(b'{"event_id": "cut short'))]


def copies_minutes_apart() -> list[tuple[int, int, object]]:
    """Copies of three event ids, whose event times differ as a client that stamps an event again when it resends
    it makes them (each id in a partition of its own, in time order, so none is late):

    - id 1 at 12:00:10, a re-send at 12:00:40 (the same minute), and again at 12:03:10: two events, a duplicate;
    - id 2 at 12:00:10, 12:01:10, 12:02:10: the second copies the first; the third is two minutes from every
      accepted copy (the second was not accepted): two events, a duplicate;
    - id 3 at 12:00:59 and 12:01:00 (a minute apart across its edge), then 12:05:00: two events, a duplicate.
    """
    times = {1: ("12:00:10", "12:00:40", "12:03:10"), 2: ("12:00:10", "12:01:10", "12:02:10")}
    times[3] = ("12:00:59", "12:01:00", "12:05:00")
    return [
        (n, offset, event(n, f"2026-11-29T{at}Z", user_id=f"u{n}", page_url=f"https://shop.example/{n}"))
        for n, copies in times.items()
        for offset, at in enumerate(copies)
    ]


@pytest.mark.parametrize("cuts", [(), (1,), (2,), (1, 2), (3, 6), (1, 4, 7)], ids=repr)
def test_copies_minutes_apart_count_the_same_however_the_batches_are_cut(tmp_path: Path, cuts: tuple[int]) -> None:
    """The same nine records, in one batch or cut into several at the offsets ``cuts`` (every partition at each),
    give the same tables: a copy is judged against the accepted copies of its id in the neighbouring minutes,
    in the batch as in the warehouse. Before, a batch judged by the id alone and the warehouse by the minutes, so
    one batch gave 3 events where the cuts gave 4 to 6, and events FINAL (keyed by hour, type and id) collapsed
    the copies an hour shared while the windows counted each."""
    records = copies_minutes_apart()
    with create_client(Settings(data_dir=tmp_path)) as client:
        apply_migrations(client)
        job = sink(client, "cuts")
        bounds = [0, *cuts, 99]
        stats = [
            run_batch(job, batch_id, [r for r in records if low <= r[1] < high])
            for batch_id, (low, high) in enumerate(itertools.pairwise(bounds))
        ]
        assert sum(s.accepted for s in stats) == 6
        assert sum(s.duplicates for s in stats) == 3
        stored = client.query_rows(
            "SELECT page_url, toString(event_time) FROM {db}.events FINAL ORDER BY page_url, event_time"
        )
        assert stored == [
            (f"https://shop.example/{n}", f"2026-11-29 {at}.000")
            for n, kept in ((1, ("12:00:10", "12:03:10")), (2, ("12:00:10", "12:02:10")), (3, ("12:00:59", "12:05:00")))
            for at in kept
        ]
        views = client.query_rows("SELECT page_url, sum(views) FROM {db}.page_views_1m FINAL GROUP BY 1 ORDER BY 1")
        assert views == [(f"https://shop.example/{n}", 2) for n in (1, 2, 3)]  # the windows count what events holds


def replayed_after_the_partition_moved_on() -> list[tuple[int, int, object]]:
    """Partition 0: a view at 12:00:10, one at 12:05:00, then the first re-sent verbatim (behind the watermark: a
    producer replaying after an outage): a duplicate. Partition 1: a view at 12:05:00, one at 12:00:10 (late), then
    that one re-sent: late too (a late event is in no aggregate, so its copy is not a copy of an accepted event)."""
    first, late = event(1, "2026-11-29T12:00:10Z"), event(3, "2026-11-29T12:00:10Z")
    on = [event(n, "2026-11-29T12:05:00Z") for n in (2, 4)]
    return [(0, 0, first), (0, 1, on[0]), (0, 2, first), (1, 0, on[1]), (1, 1, late), (1, 2, late)]


@pytest.mark.parametrize("cuts", [(), (1,), (2,), (1, 2)], ids=repr)
def test_a_replay_of_stored_events_is_duplicates_not_late_events(tmp_path: Path, cuts: tuple[int]) -> None:
    """Before, a copy behind the watermark was late whatever it copied: a producer's replay of what the job had
    stored filled late_events (and its panel) with events that were in events already."""
    with create_client(Settings(data_dir=tmp_path)) as client:
        apply_migrations(client)
        job = sink(client, "replay")
        records = replayed_after_the_partition_moved_on()
        bounds = [0, *cuts, 99]
        stats = [
            run_batch(job, batch_id, [r for r in records if low <= r[1] < high])
            for batch_id, (low, high) in enumerate(itertools.pairwise(bounds))
        ]
        assert (sum(s.accepted for s in stats), sum(s.duplicates for s in stats), sum(s.late for s in stats)) == (
            3,
            1,
            2,
        )
        assert client.query_rows("SELECT count() FROM {db}.events FINAL") == [(3,)]
        assert client.query_rows("SELECT kafka_partition, kafka_offset FROM {db}.late_events ORDER BY ALL") == [
            (1, 1),
            (1, 2),
        ]


def test_a_copy_stored_past_a_lost_checkpoints_batch_is_no_earlier_copy(tmp_path: Path) -> None:
    """A job writes a batch whose late view (partition 0) has an on-time copy on partition 1, accepted after it, and
    dies before its commit record; a new checkpoint cuts the first batch before that copy. The copy, stored past
    the batch's end, came after the late view: it is late, as in one clean run, not a duplicate of what follows."""
    late = event(5, "2026-11-29T12:00:10Z")
    records: list[tuple[int, int, object]] = [(0, 0, event(6, "2026-11-29T12:05:00Z")), (0, 1, late), (1, 0, late)]
    expected = one_clean_run(tmp_path / "clean", records)
    with create_client(Settings(data_dir=tmp_path / "crash")) as client:
        resumed = crash_before_commit(client, records)
        run_batch(resumed, 0, records[:2], planned={(TOPIC, 0): 2, (TOPIC, 1): 0})
        run_batch(resumed, 1, records[2:], planned={(TOPIC, 0): 2, (TOPIC, 1): 1})
        assert tables(client) == expected
    assert expected["late_events"] == [(1,)]
    assert expected["batches"] == [(3, 2, 0, 1, 0)]  # input, accepted, duplicates, late, dead letters


def test_a_late_record_and_its_copy_in_another_partition_count_the_same_events_however_cut(tmp_path: Path) -> None:
    """Kafka orders records within a partition only. Partition 1: a view at 12:05:00, then one at 12:00:10 (late);
    partition 2: the same view, on time there. In one batch the late one comes first (partition 1) and stays late;
    cut before it, its copy came first and was accepted, so it is a duplicate. The events are the same."""
    view = event(11, "2026-11-29T12:00:10Z")
    records: list[tuple[int, int, object]] = [(1, 0, event(12, "2026-11-29T12:05:00Z")), (1, 1, view), (2, 0, view)]
    outcomes = []
    for name, batches in (("whole", [records]), ("cut", [[records[2]], records[:2]])):
        with create_client(Settings(data_dir=tmp_path / name)) as client:
            apply_migrations(client)
            job = sink(client, name)
            stats = [run_batch(job, batch_id, batch) for batch_id, batch in enumerate(batches)]
            events = client.query_rows("SELECT toString(event_id), event_time FROM {db}.events FINAL ORDER BY ALL")
            outcomes.append((events, [(s.accepted, s.duplicates, s.late) for s in stats]))
    (whole_events, whole), (cut_events, cut) = outcomes
    assert whole_events == cut_events
    assert whole == [(2, 0, 1)]
    assert cut == [(1, 0, 0), (1, 1, 0)]


def test_a_copy_stored_before_and_further_behind_than_the_lookback_is_late(tmp_path: Path) -> None:
    """A view stored, its partition six minutes on, then the view again: late (the lookup is never given it)."""
    first = event(21, "2026-11-29T12:00:10Z")
    with create_client(Settings(data_dir=tmp_path)) as client:
        apply_migrations(client)
        job = sink(client, "lookback")
        stats = [
            run_batch(job, 0, [(0, 0, first)]),
            run_batch(job, 1, [(0, 1, event(22, "2026-11-29T12:06:00Z"))]),
            run_batch(job, 2, [(0, 2, first)]),
        ]
        assert [(s.accepted, s.duplicates, s.late) for s in stats] == [(1, 0, 0), (1, 0, 0), (0, 0, 1)]
