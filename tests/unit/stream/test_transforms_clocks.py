"""No client clock and no spelling of an id changes another record's fate (issue #22), as properties over
whatever hypothesis draws: honest records among records from clocks hours off, copies in any letter case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from rtap.contract.vocabulary import ACCEPTED, DEAD_LETTER, DUPLICATE, LATE
from rtap.settings import StreamSettings
from rtap.stream.transforms import MARK_LEAD_MS
from tests.support.records import classify_records, event

STREAM = StreamSettings()
START = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
# An honest record reaches the broker this long after its event time, at most: within the watermark delay.
HONEST_DELAY_S = STREAM.watermark_delay_s - MARK_LEAD_MS / 1000 - 0.001


def stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def spelling(uuid: str, case: str) -> str:
    return {"lower": uuid, "upper": uuid.upper(), "title": uuid[:8].upper() + uuid[8:]}[case]


# One record: who wrote it ("honest", "copy" of the honest record before it, or "skewed" with a clock that far
# off, in seconds), and how long after the previous record the broker appended it (ms).
writers = st.one_of(
    st.tuples(st.just("honest"), st.floats(0, HONEST_DELAY_S)),
    st.tuples(st.just("copy"), st.sampled_from(["lower", "upper", "title"])),
    st.tuples(st.just("skewed"), st.floats(-7200, 7200)),
)


def stream(
    draws: list[tuple[tuple[str, object], int]],
) -> tuple[list[tuple[int, int, object]], list[datetime], list[str]]:
    """One partition's records, their Kafka (broker) timestamps, and who wrote each."""
    records: list[tuple[int, int, object]] = []
    times: list[datetime] = []
    kinds: list[str] = []
    appended = START
    last_honest: dict[str, object] | None = None
    for offset, ((kind, detail), gap_ms) in enumerate(draws):
        appended += timedelta(milliseconds=gap_ms)
        if kind == "copy" and last_honest is not None:
            copy = {**last_honest, "event_id": spelling(str(last_honest["event_id"]), str(detail))}
            records.append((0, offset, copy))
        elif kind == "skewed":
            records.append((0, offset, event(10_000 + offset, stamp(appended + timedelta(seconds=float(detail))))))  # type: ignore[arg-type]
        else:  # an honest record (a "copy" with nothing before it to copy becomes one, sent at once)
            delay = float(detail) if kind == "honest" else 0.0  # type: ignore[arg-type]
            kind = "honest"
            last_honest = event(offset, stamp(appended - timedelta(seconds=delay)))  # type: ignore[arg-type]
            records.append((0, offset, last_honest))
        times.append(appended)
        kinds.append(kind)
    return records, times, kinds


@settings(max_examples=150, deadline=None)
@given(draws=st.lists(st.tuples(writers, st.integers(0, 5_000)), min_size=1, max_size=60))
def test_honest_records_keep_their_fate_whatever_other_clocks_and_spellings_do(draws) -> None:
    records, times, kinds = stream(draws)
    skew = STREAM.max_future_skew_s
    statuses = classify_records(records, timestamps=times, max_future_skew_s=skew)["status"].to_pylist()
    for kind, status in zip(kinds, statuses, strict=True):
        if kind == "honest":
            assert status == ACCEPTED  # never late, whatever clock wrote the records before it
        elif kind == "copy":
            assert status == DUPLICATE  # the same UUID, however it is spelled
        else:
            assert status in (ACCEPTED, LATE, DEAD_LETTER)
    # The same honest records alone: the same fates.
    honest = [i for i, kind in enumerate(kinds) if kind == "honest"]
    alone = classify_records(
        [records[i] for i in honest], timestamps=[times[i] for i in honest], max_future_skew_s=skew
    )
    assert alone["status"].to_pylist() == [statuses[i] for i in honest]


def test_the_issue_case_one_fast_clock_makes_no_honest_view_late() -> None:
    """500 on-time views, one 50 minutes ahead (its Kafka timestamp right), 2,500 on time: every honest view is
    counted, and the one from the fast clock is a dead letter with its reason (it is beyond the future bound)."""
    records, times = [], []
    for offset in range(3_001):
        appended = START + timedelta(milliseconds=100 * offset)
        ahead = timedelta(minutes=50) if offset == 500 else timedelta(milliseconds=-200)
        records.append((0, offset, event(offset, stamp(appended + ahead))))
        times.append(appended)
    out = classify_records(records, timestamps=times, max_future_skew_s=STREAM.max_future_skew_s)
    statuses = out["status"].to_pylist()
    assert statuses.count(ACCEPTED) == 3_000
    assert statuses[500] == DEAD_LETTER
    assert out["error"][500].as_py().startswith("event_time: outside 1970-01-01 .. record timestamp + 900s")
