"""The dashboard's per-client rate limit as ASGI middleware: a burst, then a rate, then 429 with Retry-After."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from rtap.dashboard.admission import ClientRateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limited(clock: Clock, address: str, trusted_proxies: tuple[str, ...] = ()) -> TestClient:
    app = FastAPI()

    @app.get("/api/thing")
    def thing() -> dict[str, str]:
        return {"ok": "yes"}

    app.add_middleware(ClientRateLimit, rate=2.0, burst=3, entries=100, trusted_proxies=trusted_proxies, clock=clock)
    return TestClient(app, client=(address, 50000))


def test_a_client_gets_its_burst_then_its_rate_and_is_told_when_to_come_back() -> None:
    clock = Clock()
    client = limited(clock, "10.0.0.1")
    assert [client.get("/api/thing").status_code for _ in range(3)] == [200, 200, 200]
    refused = client.get("/api/thing")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert refused.json() == {"detail": "more than 2 requests a second: retry in 1 s"}
    clock.now += 0.5  # one token back at 2 a second
    assert client.get("/api/thing").status_code == 200
    assert client.get("/api/thing").status_code == 429


def test_each_address_has_its_own_bucket() -> None:
    clock = Clock()
    app = limited(clock, "10.0.0.1").app
    looping, viewer = TestClient(app, client=("10.0.0.1", 1)), TestClient(app, client=("10.0.0.2", 1))
    statuses = [looping.get("/api/thing").status_code for _ in range(20)]
    assert statuses.count(200) == 3
    assert viewer.get("/api/thing").status_code == 200


def test_behind_a_trusted_proxy_each_forwarded_address_has_its_own_bucket() -> None:
    """A TLS or login proxy brings every viewer from its own address: the rate follows X-Forwarded-For then,
    and only from the proxies listed (anyone else's header is not believed)."""
    clock = Clock()
    proxy = limited(clock, "10.0.0.9", trusted_proxies=("10.0.0.0/24",))

    def status(forwarded: str) -> int:
        return proxy.get("/api/thing", headers={"X-Forwarded-For": forwarded}).status_code

    assert [status("203.0.113.5") for _ in range(4)] == [200, 200, 200, 429]
    assert status("203.0.113.6") == 200  # another viewer through the same proxy
    assert status("6.6.6.6, 203.0.113.5") == 429  # what the viewer wrote before the proxy's entry is not believed

    direct = TestClient(proxy.app, client=("198.51.100.7", 1))  # not a proxy of ours: its header is ignored
    assert [direct.get("/api/thing", headers={"X-Forwarded-For": f"192.0.2.{n}"}).status_code for n in range(4)] == [
        200,
        200,
        200,
        429,
    ]
