"""Another log under a topic's name: told by the topic's id, or by a partition that ends before what was read."""

from __future__ import annotations

from rtap.stream.identity import OtherLog, other_logs, refusal

TOPIC = "clickstream.events"


def test_the_same_log_read_on_is_not_another() -> None:
    positions = {TOPIC: {0: 850, 1: 490}}
    ends = {TOPIC: {0: 850, 1: 1_200}}  # at the position, or past it

    assert other_logs({TOPIC: "id-a"}, {TOPIC: "id-a"}, positions, ends) == []


def test_a_new_id_tells_a_log_that_holds_more_than_the_old_one() -> None:
    """Written past every position: only the id tells (the case that would otherwise skip records silently)."""
    (found,) = other_logs({TOPIC: "id-a"}, {TOPIC: "id-b"}, {TOPIC: {0: 850}}, {TOPIC: {0: 5_000}})

    assert found == OtherLog(TOPIC, "id-a", "id-b", {})
    assert found.describe() == (
        f"topic {TOPIC} is not the log this warehouse read "
        "(Kafka gives it id id-b, the warehouse read the log of id id-a)"
    )


def test_a_log_that_ends_before_the_positions_is_another_without_ids() -> None:
    """Batches written before topic ids were recorded, or a broker without them: the offsets tell."""
    positions = {TOPIC: {0: 850, 1: 490, 2: 230, 7: 650}}
    ends = {TOPIC: {0: 164, 1: 490, 2: 100}}  # partition 7 is gone

    (found,) = other_logs({}, {TOPIC: ""}, positions, ends)

    assert found.behind == {0: (850, 164), 2: (230, 100), 7: (650, None)}
    assert found.describe() == (
        f"topic {TOPIC} is not the log this warehouse read (its partition 0 ends at offset 164, the warehouse read it "
        "up to offset 850, and 2 more partitions likewise)"
    )
    gone = OtherLog(TOPIC, "", "", {7: (650, None)}).describe()
    assert gone.endswith("(its partition 7 is gone, the warehouse read it up to offset 650)")


def test_unknown_ids_and_unread_topics_are_not_another_log() -> None:
    # No id recorded (first batches since the upgrade), no id now (an old broker), a topic never read.
    assert other_logs({}, {TOPIC: "id-b"}, {TOPIC: {0: 10}}, {TOPIC: {0: 10}}) == []
    assert other_logs({TOPIC: "id-a"}, {TOPIC: ""}, {TOPIC: {0: 10}}, {TOPIC: {0: 12}}) == []
    assert other_logs({TOPIC: "id-a"}, {TOPIC: "id-a", "clickstream.browser": "id-c"}, {}, {}) == []


def test_each_topic_is_judged_on_its_own() -> None:
    recorded = {TOPIC: "id-a", "clickstream.browser": "id-c"}
    current = {TOPIC: "id-a", "clickstream.browser": "id-d"}

    assert [log.topic for log in other_logs(recorded, current, {}, {})] == ["clickstream.browser"]


def test_the_refusal_is_one_line_that_says_how_to_go_on() -> None:
    line = refusal(other_logs({TOPIC: "id-a"}, {TOPIC: "id-b"}, {}, {}))

    assert "\n" not in line
    assert line.startswith(f"topic {TOPIC} is not the log this warehouse read (")
    assert "deleted and created again" in line
    assert "another topic name (RTAP_KAFKA_TOPIC" in line
    assert "another warehouse (another RTAP_DATA_DIR" in line
