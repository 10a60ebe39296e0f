"""``rtap dlq reasons`` / ``rtap dlq show`` over a real chDB ``dead_letters`` table, in-process and, like next to a
running ``rtap up``, from another process through the owner's read-only socket."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtap.contract.validator import RecordValidator
from rtap.errors import ConfigError
from rtap.ops.dead_letters import (
    PREVIEW_CHARS,
    REASON_CLASS,
    Filters,
    json_line,
    letter_lines,
    printable,
    reason_class,
    reason_lines,
    reasons,
    recent,
    resolve_filters,
)
from rtap.settings import Settings, WarehouseSettings
from rtap.warehouse import WarehouseClient, create_client, serve_channel
from rtap.warehouse.migrate import apply_migrations

NOW = datetime.now(UTC).replace(microsecond=0)
BAD_TYPE = "event_type: must be one of [page_view, product_view, search]"
LONG = '{"event_id": "' + "x" * 1000 + '"'  # 1,015 characters, invalid JSON (never closed)


def dead(minutes_ago: float, topic: str, offset: int, error: str, raw: bytes) -> dict[str, object]:
    at = NOW - timedelta(minutes=minutes_ago)
    return {
        **{"received_at": at, "topic": topic, "partition": offset % 3, "offset": offset},
        **{"kafka_timestamp": at - timedelta(seconds=2), "error": error, "raw": raw, "batch_id": offset // 10},
    }


# Two days back, outside every other test's range: what a producer's bug leaves behind, with the contract's own
# reasons (the job's validator): truncated JSON cut at 26 places, three oversize records.
EVENT = orjson.dumps(
    {
        "event_id": "8c9d1f0e-8f1a-4d5e-9a3b-1c2d3e4f5a6b",
        "event_type": "page_view",
        "event_time": "2026-11-29T10:00:00.000Z",
        "user_id": "u1",
        "session_id": "s1",
        "page_url": "/product/p1?ref=home",
    }
)
BROKEN = [EVENT[:cut] for cut in range(1, len(EVENT), 7)] + [EVENT + b" " * pad for pad in (300, 400, 500)]
BROKEN_REASONS = (
    RecordValidator(max_record_bytes=400, max_future_skew_s=3600)
    .validate(BROKEN, np.full(len(BROKEN), 0))
    .errors.to_pylist()
)
# What reaches an operator's terminal from a hostile payload: C0 and C1 controls (0x9b is a one-byte CSI), bidi
# overrides that reorder what is shown, zero-width and line-separating characters.
HOSTILE = "\x1b[2J\x9b31m\x85\u202eevil\u202c\u2066x\u2069\u200b\u2028\ufeffé€日本"
TWO_DAYS = 2 * 24 * 60

ROWS = [
    dead(1, "clickstream.events", 1, "invalid JSON", LONG.encode()),
    dead(2, "clickstream.events", 2, "invalid JSON", b'{"a":\n1'),  # a newline inside the payload
    dead(3, "clickstream.events", 3, BAD_TYPE, b'{"event_type": "teleport"}'),
    dead(4, "other.events", 4, BAD_TYPE, b"\xff\xfenot utf-8"),
    dead(30, "clickstream.events", 5, "user_id: expected string, got bigint", b'{"user_id": 7}'),
    dead(180, "clickstream.events", 6, "invalid JSON", b"{old"),  # three hours ago: outside the default hour
    *(
        dead(TWO_DAYS, "bug.events", 100 + i, why, raw)
        for i, (why, raw) in enumerate(zip(BROKEN_REASONS, BROKEN, strict=True))
    ),
    dead(TWO_DAYS + 1, "hostile.events", 200, f"event_type: must be one of {HOSTILE}", HOSTILE.encode()),
]


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("dlq"), warehouse=WarehouseSettings(backend="chdb"))


@pytest.fixture(scope="module")
def reader(settings: Settings) -> Iterator[WarehouseClient]:
    """The owner's read-only client; the owner also serves the socket other processes read through."""
    columns = {
        "received_at": pa.timestamp("ms", tz="UTC"),
        "topic": pa.string(),
        "partition": pa.int32(),
        "offset": pa.int64(),
        "kafka_timestamp": pa.timestamp("ms", tz="UTC"),
        "error": pa.string(),
        "raw": pa.binary(),
        "batch_id": pa.int64(),
    }
    with create_client(settings) as owner:
        apply_migrations(owner)
        owner.insert_arrow("dead_letters", pa.table({n: pa.array([r[n] for r in ROWS], t) for n, t in columns.items()}))
        with serve_channel(owner, settings), create_client(settings, readonly=True) as client:
            yield client


def last_hour(**filters: str | None) -> Filters:
    return resolve_filters(since=None, start=None, end=None, now=NOW + timedelta(seconds=1), **filters)  # type: ignore[arg-type]


def test_reasons_count_each_reason_most_frequent_first(reader: WarehouseClient) -> None:
    total, found = reasons(reader, last_hour(topic=None, reason=None))
    assert total == 5
    assert [(r.reason, r.records) for r in found] == [
        (BAD_TYPE, 2),
        ("invalid JSON", 2),
        ("user_id: expected string, got bigint", 1),
    ]
    assert found[1].first_seen == NOW - timedelta(minutes=2)
    assert found[1].last_seen == NOW - timedelta(minutes=1)
    lines = reason_lines(total, found, last_hour(topic=None, reason=None))
    assert lines[0].startswith("5 dead letters from ")
    assert lines[2].split()[:2] == ["2", "40.0%"]


def test_filters_by_topic_reason_and_range(reader: WarehouseClient) -> None:
    assert reasons(reader, last_hour(topic="other.events", reason=None))[0] == 1
    total, found = reasons(reader, last_hour(topic=None, reason="JSON"))
    assert (total, [r.reason for r in found]) == (2, ["invalid JSON"])
    assert reasons(reader, last_hour(topic=None, reason="must be ONE of"))[0] == 2  # any case
    day = resolve_filters(since="1d", start=None, end=None, topic=None, reason=None, now=NOW + timedelta(seconds=1))
    assert reasons(reader, day)[0] == 6
    window = resolve_filters(
        since=None,
        start=(NOW - timedelta(minutes=5)).isoformat(),
        end=(NOW - timedelta(minutes=2)).isoformat(),  # exclusive
        topic=None,
        reason=None,
        now=NOW,
    )
    assert reasons(reader, window)[0] == 2  # 3 and 4 minutes ago


def test_a_limit_below_the_reasons_says_how_many_are_left_out(reader: WarehouseClient) -> None:
    filters = last_hour(topic=None, reason=None)
    total, found = reasons(reader, filters, limit=1)
    assert reason_lines(total, found, filters)[-1].split() == [
        "3", "with", "other", "reasons", "(raise", "--limit", "to", "list", "them)"
    ]  # fmt: skip


def test_recent_payloads_newest_first_cut_and_escaped(reader: WarehouseClient) -> None:
    letters = recent(reader, last_hour(topic=None, reason=None), limit=3)
    assert [letter.offset for letter in letters] == [1, 2, 3]
    first = letters[0]
    assert (len(first.raw), first.raw_chars, first.cut) == (PREVIEW_CHARS, len(LONG), True)
    assert letter_lines(first)[2].startswith(f"  raw ({len(LONG):,} characters, first {PREVIEW_CHARS} shown): ")
    assert letter_lines(letters[1])[2] == '  raw (7 characters): {"a":\\n1'  # one line, the newline escaped
    assert recent(reader, last_hour(topic=None, reason=None), limit=1, full=True)[0].raw == LONG
    (foreign,) = recent(reader, last_hour(topic="other.events", reason=None))
    assert foreign.raw.endswith("not utf-8")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"since": "2x"}, "--since must be a positive duration"),
        ({"since": "0m"}, "--since must be a positive duration"),
        ({"since": "1h", "start": "2026-01-01T00:00:00Z"}, "either --since or --from"),
        ({"start": "yesterday"}, "--from must be an ISO 8601 date-time"),
        ({"start": "2026-01-02", "end": "2026-01-01"}, "must be before --to"),
        ({"topic": " "}, "--topic must not be empty"),
        # Out of Python's calendar: one line naming the option, not an OverflowError.
        ({"since": "1000000d"}, "--since 1000000d before .* reaches back beyond the year 1"),
        ({"since": "1000000000d"}, "--since reaches back beyond the year 1"),  # more days than timedelta holds
        ({"since": "9" * 5000 + "s"}, "--since reaches back beyond the year 1"),  # more digits than int() reads
        ({"end": "0001-01-01T00:30:00Z"}, "--since 1h before 0001-01-01T00:30:00.* reaches back beyond the year 1"),
        ({"start": "0001-01-01T00:00+01:00"}, "--from must be between the years 1 and 9999 in UTC"),
        ({"start": "2026-01-01", "end": "9999-12-31T23:30-01:00"}, "--to must be between the years 1 and 9999"),
    ],
)
def test_bad_options_are_one_clear_line(options: dict[str, str], message: str) -> None:
    values: dict[str, str | None] = {"since": None, "start": None, "end": None, "topic": None, "reason": None}
    with pytest.raises(ConfigError, match=message):
        resolve_filters(**{**values, **options}, now=NOW)  # type: ignore[arg-type]


def rtap(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RTAP_DATA_DIR": str(settings.data_dir)}
    return subprocess.run([sys.executable, "-m", "rtap", *args], env=env, capture_output=True, text=True, timeout=60)


def test_the_commands_read_through_the_owners_socket(settings: Settings, reader: WarehouseClient) -> None:
    listed = rtap(settings, "dlq", "reasons", "--since", "2h")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].startswith("5 dead letters from ")
    assert lines[2].endswith(f"  {BAD_TYPE}")
    shown = rtap(settings, "dlq", "show", "--json", "--topic", "clickstream.events", "--reason", "json", "--limit", "5")
    assert shown.returncode == 0, shown.stderr
    assert [orjson.loads(line)["offset"] for line in shown.stdout.splitlines()] == [1, 2]
    assert orjson.loads(shown.stdout.splitlines()[0])["raw"] == LONG


def test_a_bad_option_is_one_line_and_exit_2(settings: Settings) -> None:
    result = rtap(settings, "dlq", "show", "--since", "a while")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == "error: --since must be a positive duration such as 90s, 15m, 6h or 2d, got 'a while'\n"


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["dlq", "show", "--since", "1000000d"], "--since"),
        (["dlq", "replay", "--from", "0001-01-01T00:00+01:00"], "--from"),
        (["dlq", "reasons", "--to", "9999-12-31T23:30-01:00"], "--to"),
    ],
)
def test_a_date_outside_the_calendar_is_one_line_and_exit_2(settings: Settings, args: list[str], option: str) -> None:
    result = rtap(settings, *args)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {option} ")
    assert len(result.stderr.splitlines()) == 1


def two_days_ago(**filters: str | None) -> Filters:
    return resolve_filters(
        since=None,
        start=(NOW - timedelta(minutes=TWO_DAYS + 5)).isoformat(),
        end=(NOW - timedelta(minutes=TWO_DAYS - 5)).isoformat(),
        now=NOW,
        **filters,  # type: ignore[arg-type]
    )


def test_reasons_are_grouped_by_class_with_the_detail_a_flag_away(reader: WarehouseClient) -> None:
    """26 truncated records are one reason, not 26 (each parser message carries its own column)."""
    filters = two_days_ago(topic="bug.events", reason=None)
    total, found = reasons(reader, filters)
    assert total == len(BROKEN) == 29
    assert [(r.reason, r.records) for r in found] == [
        ("invalid JSON (unexpected end of data)", 26),
        ("record too large", 3),
    ]
    total, detailed = reasons(reader, filters, detail=True)
    assert len(detailed) == len(set(BROKEN_REASONS)) == 29
    assert {r.reason for r in detailed} == set(BROKEN_REASONS)
    # The class keeps what tells causes apart: a field's reason is its own class.
    assert [r.reason for r in reasons(reader, last_hour(topic=None, reason=None))[1]] == [
        BAD_TYPE,
        "invalid JSON",
        "user_id: expected string, got bigint",
    ]


def test_the_reason_class_is_the_same_in_python_and_in_the_warehouse(reader: WarehouseClient) -> None:
    """``rtap dlq replay`` classes the reasons it meets in Python, ``rtap dlq reasons`` in SQL: one rule."""
    texts = [*BROKEN_REASONS, BAD_TYPE, "invalid JSON (not UTF-8)", "event_time: outside 1970-01-01 .. x + 3600s"]
    in_sql = reader.query_rows(
        f"SELECT {REASON_CLASS} FROM (SELECT arrayJoin({{errors:Array(String)}}) AS error)",
        parameters={"errors": texts},
    )
    assert [row[0] for row in in_sql] == [reason_class(text) for text in texts]
    assert len({reason_class(text) for text in BROKEN_REASONS}) == 2


DANGEROUS = {"Cc", "Cf", "Zl", "Zp"}  # controls, format characters (bidi, zero-width), line/paragraph separators


def shown_safely(text: str) -> bool:
    import unicodedata

    return not any(unicodedata.category(char) in DANGEROUS for char in text)


def test_terminal_controls_beyond_c0_are_escaped() -> None:
    shown = printable(HOSTILE)
    assert shown_safely(shown), ascii(shown)
    assert shown.startswith("\\x1b[2J\\x9b31m\\x85\\u202eevil")
    assert shown.endswith("é€日本")  # printable text beyond ASCII stays as it is


@given(st.text())
def test_printable_never_lets_a_control_through(text: str) -> None:
    assert shown_safely(printable(text))


@given(st.text())
def test_json_lines_escape_controls_and_keep_the_text(text: str) -> None:
    line = json_line({"raw": text})
    assert shown_safely(line)
    assert orjson.loads(line) == {"raw": text}


def test_show_escapes_a_hostile_payload_and_reason(settings: Settings, reader: WarehouseClient) -> None:
    (letter,) = recent(reader, two_days_ago(topic="hostile.events", reason=None))
    lines = letter_lines(letter)
    assert all(shown_safely(line) for line in lines), ascii(lines)
    window = two_days_ago(topic=None, reason=None)
    span = ["--topic", "hostile.events", "--from", window.start.isoformat(), "--to", window.end.isoformat()]
    shown = rtap(settings, "dlq", "show", *span)
    assert shown.returncode == 0, shown.stderr
    assert "\\u202e" in shown.stdout
    assert shown_safely(shown.stdout.replace("\n", "")), ascii(shown.stdout)
    as_json = rtap(settings, "dlq", "show", "--json", *span)
    assert as_json.returncode == 0, as_json.stderr
    assert shown_safely(as_json.stdout.replace("\n", "")), ascii(as_json.stdout)
    assert orjson.loads(as_json.stdout)["raw"] == HOSTILE  # escaped as JSON escapes: a script gets the bytes back
    listed = rtap(settings, "dlq", "reasons", *span)
    assert listed.returncode == 0, listed.stderr
    assert shown_safely(listed.stdout.replace("\n", "")), ascii(listed.stdout)


def test_the_reasons_command_takes_detail(settings: Settings, reader: WarehouseClient) -> None:
    window = two_days_ago(topic=None, reason=None)
    span = ["--topic", "bug.events", "--from", window.start.isoformat(), "--to", window.end.isoformat()]
    classes = rtap(settings, "dlq", "reasons", *span)
    assert classes.returncode == 0, classes.stderr
    assert classes.stdout.splitlines()[2].endswith("  invalid JSON (unexpected end of data)")
    assert len(classes.stdout.splitlines()) == 4
    detailed = rtap(settings, "dlq", "reasons", "--detail", *span)
    assert detailed.returncode == 0, detailed.stderr
    assert len(detailed.stdout.splitlines()) == 2 + 29
