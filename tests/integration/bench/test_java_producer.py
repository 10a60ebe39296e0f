"""bench/java/OutsideProducer.java, as ``bench/outside_java.py`` runs it: Kafka's own Java client writes what the
module says (valid, distinct contract-v1 events, upper-case ids, the run's user ids as keys) to a real broker."""

from __future__ import annotations

import uuid

import orjson
from rtap_bench.java_producer import send

from rtap.contract import validate_event
from rtap.ingest.topics import ensure_topics
from rtap.settings import Settings
from tests.support.collect import read_topic


def test_the_java_producer_sends_valid_distinct_events_with_upper_case_ids(kafka_settings: Settings) -> None:
    topic = f"java-{uuid.uuid4().hex[:8]}"
    kafka = kafka_settings.kafka.model_copy(update={"topic": topic, "dlq_topic": f"{topic}.dlq"})
    ensure_topics(kafka)
    sent = send(kafka_settings.model_copy(update={"kafka": kafka}), topic, "t1", rate=300.0, seconds=1.0)

    assert (sent["run"], sent["sent"], sent["refused"]) == ("t1", 300, 0)
    messages = read_topic(kafka, topic, at_least=300)
    assert len(messages) == 300
    raw = [orjson.loads(m.value()) for m in messages]
    events = [validate_event(m.value()) for m in messages]  # every one valid under contract v1
    assert all(r["event_id"] == r["event_id"].upper() != r["event_id"].lower() for r in raw)
    assert len({e["event_id"] for e in events}) == 300  # distinct once spelled alike
    assert {e["event_type"] for e in events} == {
        "page_view", "product_view", "search", "add_to_cart", "checkout", "purchase"
    }  # fmt: skip
    assert all(
        m.key().decode() == e["user_id"] and e["user_id"].startswith("jv-t1-u")
        for m, e in zip(messages, events, strict=True)
    )
    purchases = [e for e in events if e["event_type"] == "purchase"]
    assert len(purchases) == 300 // 9  # one event in nine
    assert all(e["order_id"].startswith("jv-t1-o") and e["quantity"] == 2 for e in purchases)
