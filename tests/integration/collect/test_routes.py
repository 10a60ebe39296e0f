"""The collector's endpoints against the real broker: `rtap collect` as `rtap up` runs it, every accepted event read
back from Kafka with the server's fields, every refusal answered with its status and reason and nothing written."""

from __future__ import annotations

import gzip
import ipaddress
import re
import socket
from collections.abc import Callable, Iterator
from urllib.parse import quote

import httpx
import orjson
import pytest

from rtap.runtime.stack.collector import CollectorDaemon
from rtap.runtime.stack.status import collector_check
from rtap.settings import DEMO_WRITE_KEY, Settings
from tests.support.collect import collector_settings, new_event, read_topic, running_collector, values
from tests.support.waiting import settled

RFC3339_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
SENT_AT = "2026-12-02T08:00:00.000Z"


@pytest.fixture(scope="module")
def settings(kafka_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    counter = iter(range(1_000_000))
    return collector_settings(
        kafka_settings, tmp_path_factory.mktemp("rtap-collect"), lambda prefix: f"{prefix}-routes-{next(counter)}"
    )


@pytest.fixture(scope="module")
def collector(settings: Settings) -> Iterator[CollectorDaemon]:
    with running_collector(settings) as daemon:
        yield daemon


@pytest.fixture
def client(collector: CollectorDaemon) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=collector.url, timeout=30.0) as http:
        yield http


def origin(collector: CollectorDaemon) -> str:
    """The demo key's origin: the collector's own."""
    return collector.url


def browser_records(settings: Settings, at_least: int) -> list[dict]:
    return values(read_topic(settings.kafka, settings.kafka.browser_topic, at_least))


def test_a_batch_is_answered_200_only_with_its_events_in_kafka_with_the_server_fields(
    client: httpx.Client, collector: CollectorDaemon, settings: Settings
) -> None:
    events = [new_event(n, ip="6.6.6.6", site="forged") for n in range(3)]
    body = {"write_key": DEMO_WRITE_KEY, "sent_at": SENT_AT, "events": events}

    answer = client.post(
        "/v1/batch",
        content=orjson.dumps(body),
        headers={"Origin": origin(collector), "Content-Type": "application/json", "User-Agent": "rtap-test/1"},
    )

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"accepted": 3}
    assert answer.headers["access-control-allow-origin"] == origin(collector)
    assert "Origin" in answer.headers["vary"]
    # The answer came after Kafka's acknowledgement: the records are there when it arrives.
    by_id = {record["event_id"]: (message, record) for message, record in _records(settings, 3)}
    for event in events:
        message, record = by_id[event["event_id"]]
        assert message.key() == event["session_id"].encode()
        for name in ("type", "created_at", "anonymous_id", "session_id", "url", "referrer", "title", "device"):
            assert record[name] == event[name]
        assert RFC3339_MS.match(record["received_at"])
        assert record["sent_at"] == SENT_AT
        assert record["ip"] == "127.0.0.0"  # the connection's address, anonymised; the client's "ip" overwritten
        assert record["user_agent"] == "rtap-test/1"
        assert record["site"] == "demo"
        assert "write_key" not in record


def _records(settings: Settings, at_least: int) -> list[tuple]:
    messages = read_topic(settings.kafka, settings.kafka.browser_topic, at_least)
    return [(m, orjson.loads(m.value())) for m in messages]


def test_sendbeacon_text_plain_single_event_gzip_batch_and_pixel_are_accepted(
    client: httpx.Client, collector: CollectorDaemon, settings: Settings
) -> None:
    single = new_event(10)
    answer = client.post(
        "/v1/event",
        content=orjson.dumps({**single, "write_key": DEMO_WRITE_KEY, "sent_at": SENT_AT}),
        headers={"Origin": origin(collector), "Content-Type": "text/plain;charset=UTF-8"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"accepted": 1}

    zipped = [new_event(11), new_event(12)]
    answer = client.post(
        "/v1/batch",
        content=gzip.compress(orjson.dumps({"sent_at": SENT_AT, "events": zipped})),
        headers={"Content-Encoding": "gzip", "X-Rtap-Write-Key": DEMO_WRITE_KEY},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"accepted": 2}

    pixel = new_event(13)
    answer = client.get(f"/v1/pixel.gif?key={DEMO_WRITE_KEY}&sent_at={quote(SENT_AT)}&e={quote(orjson.dumps(pixel))}")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/gif"
    assert answer.content.startswith(b"GIF89a")

    wanted = {e["event_id"] for e in (single, *zipped, pixel)}
    found = {r["event_id"]: r for r in browser_records(settings, 7) if r["event_id"] in wanted}
    assert set(found) == wanted
    assert "write_key" not in found[single["event_id"]]
    assert found[pixel["event_id"]]["sent_at"] == SENT_AT


def test_the_pixel_of_a_page_without_javascript_gets_the_ids_a_script_would_have_made(
    client: httpx.Client, collector: CollectorDaemon, settings: Settings
) -> None:
    # What the demo shop's <noscript> image sends: a constant event, no ids, no times.
    constant = quote(orjson.dumps({"type": "page_view", "url": "/shop/cart.html"}))
    for _ in range(2):
        answer = client.get(f"/v1/pixel.gif?key={DEMO_WRITE_KEY}&e={constant}", headers={"User-Agent": "lynx"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["cache-control"] == "no-store"
    referred = quote(orjson.dumps({"type": "page_view"}))
    page = f"{origin(collector)}/p"
    answer = client.get(
        f"/v1/pixel.gif?key={DEMO_WRITE_KEY}&e={referred}", headers={"User-Agent": "lynx", "Referer": page}
    )
    assert answer.status_code == 200, answer.text
    pixels = [r for r in browser_records(settings, 3) if r.get("user_agent") == "lynx"]
    assert len(pixels) == 3
    assert len({r["event_id"] for r in pixels}) == 3  # one request, one event
    assert len({r["anonymous_id"] for r in pixels}) == 1  # the same visitor: site, address, browser
    assert len({r["session_id"] for r in pixels}) == 1
    assert [r["url"] for r in pixels] == ["/shop/cart.html", "/shop/cart.html", page]


def test_the_pixel_is_refused_from_another_sites_page_and_with_a_query_that_is_not_utf8(
    client: httpx.Client, settings: Settings
) -> None:
    event = quote(orjson.dumps(new_event(20)))
    embedded = client.get(
        f"/v1/pixel.gif?key={DEMO_WRITE_KEY}&e={event}", headers={"Referer": "https://evil.example/page.html"}
    )
    assert embedded.status_code == 403, embedded.text
    assert embedded.json()["reason"] == "origin_not_allowed"
    # %FF is no UTF-8: refused, where a lenient decoder would have stored U+FFFD in its place
    mangled = "%7B%22type%22%3A%22page_view%22%2C%22title%22%3A%22caf%FF%22%7D"  # {"type": ..., "title": "caf\xff"}
    not_utf8 = client.get(f"/v1/pixel.gif?key={DEMO_WRITE_KEY}&e={mangled}")
    assert not_utf8.status_code == 400, not_utf8.text
    assert not_utf8.json()["reason"] == "invalid_json"
    assert "not UTF-8" in not_utf8.json()["error"]


@pytest.mark.parametrize(
    ("headers", "body", "status", "reason"),
    [
        ({}, {"sent_at": SENT_AT, "events": [new_event()]}, 401, "missing_write_key"),
        ({}, {"write_key": "stolen", "events": [new_event()]}, 401, "unknown_write_key"),
        ({"X-Rtap-Write-Key": "stolen"}, {"events": [new_event()]}, 401, "unknown_write_key"),
        (
            {"Origin": "https://evil.example"},
            {"write_key": DEMO_WRITE_KEY, "events": [new_event()]},
            403,
            "origin_not_allowed",
        ),
        ({}, b"{not json", 400, "invalid_json"),
        ({}, {"write_key": DEMO_WRITE_KEY, "events": {"a": 1}}, 400, "wrong_shape"),
        ({}, {"write_key": DEMO_WRITE_KEY, "events": [new_event(), 7]}, 400, "wrong_shape"),
        ({}, {"write_key": DEMO_WRITE_KEY, "events": []}, 400, "empty_batch"),
        ({}, [new_event()], 400, "wrong_shape"),
        (
            {"Content-Encoding": "br"},
            {"write_key": DEMO_WRITE_KEY, "events": [new_event()]},
            415,
            "unsupported_encoding",
        ),
        ({"Content-Encoding": "gzip"}, {"write_key": DEMO_WRITE_KEY, "events": [new_event()]}, 400, "invalid_gzip"),
        ({}, {"write_key": DEMO_WRITE_KEY, "events": [new_event(title="x" * 40_000)]}, 413, "event_too_large"),
        ({}, {"write_key": DEMO_WRITE_KEY, "events": [new_event()] * 501}, 413, "too_many_events"),
        # JSON orjson reads (1,024 levels) but cannot write again (254): a 400, never a 500 a tracker retries
        ({}, b'{"write_key": "rtap-demo", "events": [{"p": ' + b"[" * 300 + b"]" * 300 + b"}]}", 400, "wrong_shape"),
    ],
)
def test_what_can_never_become_an_event_is_refused_with_its_status_and_reason(
    client: httpx.Client, headers: dict[str, str], body: object, status: int, reason: str
) -> None:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    answer = client.post("/v1/batch", content=content, headers=headers)
    assert answer.status_code == status, answer.text
    assert answer.json()["reason"] == reason
    assert answer.json()["error"]
    assert "retry-after" not in answer.headers


def test_oversized_bodies_and_gzip_bombs_are_refused_without_inflating_them(client: httpx.Client) -> None:
    big = client.post("/v1/batch", content=b" " * (1_048_576 + 1), headers={"X-Rtap-Write-Key": DEMO_WRITE_KEY})
    assert big.status_code == 413
    assert big.json()["reason"] == "body_too_large"
    # 1 GiB of zeros in about 1 MB of gzip: refused once 1 MiB has been inflated.
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 1_048_576
    answer = client.post(
        "/v1/batch", content=bomb, headers={"Content-Encoding": "gzip", "X-Rtap-Write-Key": DEMO_WRITE_KEY}
    )
    assert answer.status_code == 413
    assert answer.json()["reason"] == "body_too_large"
    assert "inflates" in answer.json()["error"]


def test_preflights_are_answered_for_the_keys_origins_only(client: httpx.Client, collector: CollectorDaemon) -> None:
    asked = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    allowed = client.options(f"/v1/batch?key={DEMO_WRITE_KEY}", headers={"Origin": origin(collector), **asked})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == origin(collector)
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "Origin" in allowed.headers["vary"]
    for url, from_origin in (
        (f"/v1/batch?key={DEMO_WRITE_KEY}", "https://evil.example"),
        ("/v1/event", "https://evil.example"),
        ("/v1/batch?key=stolen", origin(collector)),
    ):
        refused = client.options(url, headers={"Origin": from_origin, **asked})
        assert refused.status_code == 403
        assert "access-control-allow-origin" not in refused.headers


def test_health_metrics_and_the_static_files_are_served(client: httpx.Client, settings: Settings) -> None:
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    line = collector_check(settings)  # what `rtap status` shows while `rtap up` runs it
    assert line.ok
    assert settings.kafka.browser_topic in line.detail
    exposition = client.get("/metrics").text
    for name in (
        "rtap_collect_requests_total",
        "rtap_collect_events_accepted_total",
        "rtap_collect_events_refused_total",
        "rtap_collect_ack_seconds_bucket",
        "rtap_collect_sink_healthy 1.0",
        "process_start_time_seconds",
    ):
        assert name in exposition, name
    tracker = client.get("/tracker.js")
    assert tracker.status_code == 200
    assert tracker.headers["content-type"].startswith("application/javascript")
    assert "max-age" in tracker.headers["cache-control"]
    assert client.get("/shop/").status_code == 200
    assert client.post("/v1/noop/batch", content=b"{}").status_code in (404, 405)  # the benchmark's route is off


def test_a_taken_port_and_a_public_address_with_the_demo_key_are_one_line_each(
    settings: Settings, collector: CollectorDaemon
) -> None:
    import subprocess
    import sys

    from rtap.settings import child_environment

    env = {**child_environment(settings), "RTAP_COLLECT_PORT": str(collector.port)}
    taken = subprocess.run(
        [sys.executable, "-m", "rtap", "collect"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert taken.returncode != 0
    assert taken.stderr.strip().count("\n") == 0, taken.stderr
    assert f"port 127.0.0.1:{collector.port} for the collector is already in use" in taken.stderr

    public = subprocess.run(
        [sys.executable, "-m", "rtap", "collect", "--host", "0.0.0.0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert public.returncode == 2
    assert "only the built-in demo write key" in public.stderr
    assert public.stderr.strip().count("\n") == 0, public.stderr


def test_rate_limits_answer_429_with_retry_after(
    kafka_settings: Settings, tmp_path_factory: pytest.TempPathFactory, unique_name: Callable[[str], str]
) -> None:
    settings = collector_settings(kafka_settings, tmp_path_factory.mktemp("rtap-collect-limits"), unique_name)
    env = {"RTAP_COLLECT_MAX_BATCH_EVENTS": "5", "RTAP_COLLECT_IP_BURST": "5", "RTAP_COLLECT_IP_EVENTS_PER_S": "0.5"}
    with running_collector(settings, env) as daemon, httpx.Client(base_url=daemon.url, timeout=30.0) as http:
        batch = {"write_key": DEMO_WRITE_KEY, "events": [new_event(n) for n in range(5)]}
        # A request refused for its size takes no tokens: the five that follow still fit the burst of five.
        oversized = {**batch, "events": [*batch["events"][:4], new_event(9, title="x" * 40_000)]}
        assert http.post("/v1/batch", content=orjson.dumps(oversized)).status_code == 413
        assert http.post("/v1/batch", content=orjson.dumps(batch)).status_code == 200
        limited = http.post("/v1/batch", content=orjson.dumps(batch))
        assert limited.status_code == 429
        assert limited.json()["reason"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
        assert len(browser_records(settings, 5)) == 5  # the refused batch wrote nothing


def test_anonymisation_can_be_turned_off_and_a_trusted_proxy_names_the_client(
    kafka_settings: Settings, tmp_path_factory: pytest.TempPathFactory, unique_name: Callable[[str], str]
) -> None:
    settings = collector_settings(kafka_settings, tmp_path_factory.mktemp("rtap-collect-proxy"), unique_name)
    env = {"RTAP_COLLECT_ANONYMIZE_IP": "false", "RTAP_COLLECT_TRUSTED_PROXIES": '["127.0.0.1"]'}
    with running_collector(settings, env) as daemon, httpx.Client(base_url=daemon.url, timeout=30.0) as http:
        batch = {"write_key": DEMO_WRITE_KEY, "events": [new_event(0)]}
        forwarded = {"X-Forwarded-For": "6.6.6.6, 2001:db8::7, 127.0.0.1"}
        assert http.post("/v1/batch", content=orjson.dumps(batch), headers=forwarded).status_code == 200
        (record,) = browser_records(settings, 1)
        # The nearest address a trusted proxy did not add: a client's own claim (6.6.6.6) is not believed.
        assert ipaddress.ip_address(record["ip"]) == ipaddress.ip_address("2001:db8::7")
        # A proxy that adds its own line after the client's (HAProxy): every line counts, the proxy's last.
        event = new_event(1)
        second = {"write_key": DEMO_WRITE_KEY, "events": [event]}
        lines = [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "2001:db8::8")]
        assert http.post("/v1/batch", content=orjson.dumps(second), headers=lines).status_code == 200
        by_id = {r["event_id"]: r for r in browser_records(settings, 2)}
        assert ipaddress.ip_address(by_id[event["event_id"]]["ip"]) == ipaddress.ip_address("2001:db8::8")


def test_several_workers_write_every_accepted_event_once_and_count_them_together(
    kafka_settings: Settings, tmp_path_factory: pytest.TempPathFactory, unique_name: Callable[[str], str]
) -> None:
    """`RTAP_COLLECT_WORKERS=2`: requests spread over two processes on one socket; Kafka holds each accepted event
    once, /metrics on either process counts all of them, and a stop flushes both."""
    settings = collector_settings(kafka_settings, tmp_path_factory.mktemp("rtap-collect-workers"), unique_name)
    sent: set[str] = set()
    with running_collector(settings, {"RTAP_COLLECT_WORKERS": "2"}) as daemon:
        for n in range(60):  # a new connection each: the kernel hands them to either process
            events = [new_event(n) for _ in range(5)]
            answer = httpx.post(
                daemon.url + "/v1/batch", content=orjson.dumps({"write_key": DEMO_WRITE_KEY, "events": events})
            )
            assert answer.status_code == 200, answer.text
            sent.update(event["event_id"] for event in events)
        # The health gauge is the least over the live workers, each writing its own every second: a worker that
        # took no request yet may still report 0 until its probe reaches Kafka. Wait for all to say healthy.
        exposition = settled(
            lambda: httpx.get(daemon.url + "/metrics").text, lambda text: "rtap_collect_sink_healthy 1.0" in text, 30
        )
        assert "rtap_collect_events_accepted_total 300.0" in exposition
        assert "rtap_collect_sink_healthy 1.0" in exposition
    stored = [record["event_id"] for record in browser_records(settings, 300)]
    assert sorted(stored) == sorted(sent)


def test_slow_clients_lose_their_connection_instead_of_holding_it(
    kafka_settings: Settings, tmp_path_factory: pytest.TempPathFactory, unique_name: Callable[[str], str]
) -> None:
    """Slow-loris: a connection that sends nothing, and a body that never ends, each get a 408 within the
    collector's deadlines (shortened here) and lose the connection, which every other client needs."""
    settings = collector_settings(kafka_settings, tmp_path_factory.mktemp("rtap-collect-slow"), unique_name)
    env = {"RTAP_COLLECT_HEADER_TIMEOUT_S": "0.5", "RTAP_COLLECT_BODY_TIMEOUT_S": "1"}
    with running_collector(settings, env) as daemon:
        address = httpx.URL(daemon.url)
        with socket.create_connection((address.host, address.port), timeout=10) as silent:
            assert _until_closed(silent).startswith(b"HTTP/1.1 408 ")
        with socket.create_connection((address.host, address.port), timeout=10) as trickling:
            head = f"POST /v1/batch HTTP/1.1\r\nHost: x\r\nX-Rtap-Write-Key: {DEMO_WRITE_KEY}\r\n"
            trickling.sendall(head.encode() + b'Content-Length: 1000\r\n\r\n{"events": [')
            answer = _until_closed(trickling)
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b'"reason":"body_timeout"' in answer
        assert b"retry-after: 1" in answer.lower()


def _until_closed(conn: socket.socket) -> bytes:
    received = b""
    while chunk := conn.recv(65536):
        received += chunk
    return received
