"""The dashboard beyond loopback: it refuses to listen there without a password, and with one every page and API
answer needs a session (a login form, then a signed cookie); the health probe stays open."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError
from starlette.requests import Request

from rtap.dashboard.api import create_app
from rtap.dashboard.auth import (
    MAX_FAILED_LOGINS,
    MAX_LOGIN_BODY,
    SESSION_COOKIE,
    check_exposure,
    hash_password,
    read_login_body,
)
from rtap.dashboard.server import serve_dashboard
from rtap.errors import ConfigError
from rtap.ops.checks import dashboard_login
from rtap.settings import DashboardSettings, Settings
from rtap.warehouse import WarehouseClient
from tests.support.seed import seeded_warehouse
from tests.support.tls import make_certificates

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, WarehouseClient]]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("rtap-dashboard-auth"))
    with seeded_warehouse(settings, datetime.now(UTC) - timedelta(seconds=1)) as (_, reader):
        yield settings, reader


def protected(settings: Settings, **auth: SecretStr) -> Settings:
    # An answer is shared for an hour: the login must hold for an answer the cache already has, too. The test
    # client is no loopback peer and speaks no TLS: a port only this host reaches (as compose's) takes its login.
    dashboard = DashboardSettings.model_validate(
        {"host": "0.0.0.0", "cache_ttl_s": 3600, "private_network": True, **auth}
    )
    return settings.model_copy(update={"dashboard": dashboard})


# A name other than localhost is beyond loopback whatever it resolves to now: it may resolve elsewhere when bound.
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "example.invalid", "localhost.localdomain"])
def test_the_dashboard_refuses_to_listen_beyond_loopback_without_a_password(
    warehouse: tuple[Settings, WarehouseClient], host: str
) -> None:
    settings, reader = warehouse
    exposed = settings.model_copy(update={"dashboard": DashboardSettings(host=host)})
    with pytest.raises(ConfigError, match="RTAP_DASHBOARD_PASSWORD") as refused:
        serve_dashboard(exposed, reader, port=0)
    assert host in str(refused.value)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "localhost"])
def test_loopback_needs_no_password(host: str) -> None:
    check_exposure(DashboardSettings(host=host))


def test_a_password_or_its_hash_with_tls_allows_any_address(tmp_path: Path) -> None:
    """TLS of its own or a TLS proxy's in front: the password never crosses the network in clear."""
    own_tls = {"tls_certificate_file": tmp_path / "c.pem", "tls_key_file": tmp_path / "k.pem"}
    behind_a_proxy = {"trusted_proxies": ["10.0.0.5"]}
    for tls in (own_tls, behind_a_proxy):
        check_exposure(DashboardSettings(host="0.0.0.0", password=SecretStr(PASSWORD), **tls))  # type: ignore[arg-type]
        hashed = SecretStr(hash_password(PASSWORD))
        check_exposure(DashboardSettings(host="0.0.0.0", password_hash=hashed, **tls))  # type: ignore[arg-type]


def test_a_password_in_plain_http_beyond_loopback_is_refused() -> None:
    with pytest.raises(ConfigError, match="in plain HTTP: set RTAP_DASHBOARD_TLS_CERTIFICATE_FILE") as refused:
        check_exposure(DashboardSettings(host="0.0.0.0", password=SecretStr(PASSWORD)))
    assert "\n" not in str(refused.value)


def test_with_a_certificate_the_dashboard_speaks_tls_and_its_cookie_is_secure(
    warehouse: tuple[Settings, WarehouseClient], tmp_path: Path
) -> None:
    settings, reader = warehouse
    certificates = make_certificates(tmp_path)
    dashboard = DashboardSettings.model_validate(
        {
            "password": SecretStr(PASSWORD),
            "tls_certificate_file": certificates.broker_certificate,  # made for 127.0.0.1
            "tls_key_file": certificates.broker_key,
        }
    )
    with serve_dashboard(settings.model_copy(update={"dashboard": dashboard}), reader, port=0) as server:
        assert server.url.startswith("https://127.0.0.1:")
        trusting = ssl.create_default_context(cafile=certificates.ca)
        with httpx.Client(base_url=server.url, verify=trusting, follow_redirects=False, timeout=10) as browser:
            login = browser.post("/login", data={"password": PASSWORD})
            assert login.status_code == 303
            assert "; secure" in login.headers["set-cookie"].lower()
            assert browser.get("/openapi.json").status_code == 200
        with pytest.raises(httpx.TransportError):
            httpx.get(server.url.replace("https:", "http:") + "/api/health", timeout=5)


def test_unusable_tls_files_are_one_line_before_anything_listens(
    warehouse: tuple[Settings, WarehouseClient], tmp_path: Path
) -> None:
    settings, reader = warehouse
    (tmp_path / "c.pem").write_text("not a certificate")
    dashboard = DashboardSettings.model_validate(
        {"tls_certificate_file": tmp_path / "c.pem", "tls_key_file": tmp_path / "k.pem"}
    )
    with pytest.raises(ConfigError, match=r"TLS certificate .*c\.pem and key .*k\.pem cannot be used"):
        serve_dashboard(settings.model_copy(update={"dashboard": dashboard}), reader, port=0)
    with pytest.raises(ValidationError, match="go together"):
        DashboardSettings.model_validate({"tls_certificate_file": tmp_path / "c.pem"})


def test_the_rtap_dashboard_command_refuses_too(warehouse: tuple[Settings, WarehouseClient]) -> None:
    settings, _ = warehouse
    result = subprocess.run(
        [sys.executable, "-m", "rtap", "dashboard", "--host", "0.0.0.0", "--port", "0"],
        env={**os.environ, "RTAP_DATA_DIR": str(settings.data_dir), "RTAP_METRICS_ENABLED": "false"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: the dashboard would listen on 0.0.0.0")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("kind", ["password", "password_hash"])
def test_every_answer_needs_a_session_after_login(warehouse: tuple[Settings, WarehouseClient], kind: str) -> None:
    settings, reader = warehouse
    secret = SecretStr(PASSWORD if kind == "password" else hash_password(PASSWORD))
    api = TestClient(create_app(protected(settings, **{kind: secret}), reader), follow_redirects=False)
    # Without a session: the page sends to the login form, the API and its documents answer 401.
    page = api.get("/")
    assert (page.status_code, page.headers["location"]) == (303, "/login")
    for path in ("/api/panels/active_users", "/api/dashboards", "/openapi.json", "/docs", "/static/app.js"):
        denied = api.get(path)
        assert denied.status_code == 401, path
        assert denied.json() == {"detail": "log in at /login"}
    assert api.get("/api/health").status_code == 200  # the liveness probe of compose and `rtap validate`
    assert "password" in api.get("/login").text
    # A wrong password: the form again, no cookie.
    wrong = api.post("/login", data={"password": "guess"})
    assert wrong.status_code == 401
    assert SESSION_COOKIE not in wrong.cookies
    # The right one: a session cookie, HttpOnly and SameSite=Strict, then everything answers.
    right = api.post("/login", data={"password": PASSWORD})
    assert (right.status_code, right.headers["location"]) == (303, "/")
    cookie = right.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert api.get("/api/panels/active_users").status_code == 200
    assert api.get("/").status_code == 200
    # A forged or altered cookie is no session.
    value = api.cookies[SESSION_COOKIE]
    expiry, signature = value.rsplit(".", 1)
    for forged in (f"{float(expiry) + 3600:.6f}.{signature}", f"{expiry}.{signature[::-1]}", expiry, "", "x.y.z"):
        api.cookies.clear()
        api.cookies.set(SESSION_COOKIE, forged)
        assert api.get("/api/dashboards").status_code == 401, forged
        assert api.get("/api/panels/active_users").status_code == 401, forged  # cached since the login
    # Logging out ends it.
    api.cookies.clear()
    api.cookies.set(SESSION_COOKIE, value)
    assert api.post("/logout").status_code == 303
    assert api.get("/api/dashboards").status_code == 401


def test_a_session_from_another_dashboard_is_not_accepted(warehouse: tuple[Settings, WarehouseClient]) -> None:
    settings, reader = warehouse
    first = TestClient(create_app(protected(settings, password=SecretStr(PASSWORD)), reader), follow_redirects=False)
    second = TestClient(create_app(protected(settings, password=SecretStr(PASSWORD)), reader), follow_redirects=False)
    assert first.post("/login", data={"password": PASSWORD}).status_code == 303
    second.cookies.set(SESSION_COOKIE, first.cookies[SESSION_COOKIE])
    assert second.get("/api/dashboards").status_code == 401


def test_guessing_is_slowed_to_a_few_tries_a_minute(warehouse: tuple[Settings, WarehouseClient]) -> None:
    settings, reader = warehouse
    api = TestClient(create_app(protected(settings, password=SecretStr(PASSWORD)), reader), follow_redirects=False)
    for _ in range(MAX_FAILED_LOGINS):
        assert api.post("/login", data={"password": "guess"}).status_code == 401
    refused = api.post("/login", data={"password": PASSWORD})  # even the right one, until the minute is over
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0


def test_an_oversized_login_body_is_refused(warehouse: tuple[Settings, WarehouseClient]) -> None:
    settings, reader = warehouse
    api = TestClient(create_app(protected(settings, password=SecretStr(PASSWORD)), reader), follow_redirects=False)
    assert api.post("/login", data={"password": "x" * 100_000}).status_code == 413


def test_hash_password_makes_a_salted_scrypt_hash() -> None:
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first.startswith("scrypt$")
    assert first != second  # salted
    with pytest.raises(ConfigError, match="RTAP_DASHBOARD_PASSWORD_HASH"):
        check_exposure(DashboardSettings(host="0.0.0.0", password_hash=SecretStr("md5$abc")))


def test_the_hash_password_command_reads_stdin_and_prints_the_hash() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rtap", "dashboard", "--hash-password"],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    printed = result.stdout.strip()
    assert printed.startswith("scrypt$")
    check_exposure(DashboardSettings(host="0.0.0.0", password_hash=SecretStr(printed), trusted_proxies=["10.0.0.5"]))


def test_rtap_validate_logs_in_with_the_password(warehouse: tuple[Settings, WarehouseClient]) -> None:
    settings, reader = warehouse
    api = TestClient(create_app(protected(settings, password=SecretStr(PASSWORD)), reader))
    dashboard_login(api, PASSWORD)
    assert api.get("/api/dashboards").status_code == 200
    with pytest.raises(ConfigError, match="RTAP_DASHBOARD_PASSWORD"):
        dashboard_login(TestClient(create_app(protected(settings, password=SecretStr(PASSWORD)), reader)), "nope")


def _login_from(
    warehouse: tuple[Settings, WarehouseClient], peer: str, forwarded_proto: str | None, *, private_network: bool
) -> httpx.Response:
    """A right password posted from ``peer`` to a dashboard beyond loopback behind the TLS proxy 172.30.253.2."""
    settings, reader = warehouse
    behind = protected(settings, password=SecretStr(PASSWORD))
    update = {"trusted_proxies": ["172.30.253.2"], "private_network": private_network}
    behind = behind.model_copy(update={"dashboard": behind.dashboard.model_copy(update=update)})
    api = TestClient(create_app(behind, reader), follow_redirects=False, client=(peer, 40000))
    headers = {} if forwarded_proto is None else {"X-Forwarded-Proto": forwarded_proto}
    return api.post("/login", data={"password": PASSWORD}, headers=headers)


@pytest.mark.parametrize(
    ("peer", "forwarded_proto", "private_network", "secure"),
    [
        ("172.30.253.2", "https", False, True),  # the TLS proxy the dashboard trusts says the browser used TLS
        ("127.0.0.1", None, False, False),  # a browser on this machine
        ("172.30.253.2", None, True, False),  # that proxy over plain HTTP, on a network that stays on this host
        ("192.0.2.7", None, True, False),  # anyone there
    ],
)
def test_the_session_cookie_is_secure_when_the_browser_came_over_tls(
    warehouse: tuple[Settings, WarehouseClient],
    peer: str,
    forwarded_proto: str | None,
    private_network: bool,
    secure: bool,
) -> None:
    answer = _login_from(warehouse, peer, forwarded_proto, private_network=private_network)
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert ("; secure" in cookie.lower()) is secure, cookie


@pytest.mark.parametrize(
    ("peer", "forwarded_proto"),
    [
        ("192.0.2.7", None),  # a browser on the network, straight to the port, in plain HTTP
        ("192.0.2.7", "https"),  # the same, claiming TLS: only a trusted proxy is believed
        ("172.30.253.2", None),  # the trusted proxy itself, forwarding plain HTTP
    ],
)
def test_beyond_loopback_a_password_in_plain_http_is_refused_unchecked(
    warehouse: tuple[Settings, WarehouseClient], peer: str, forwarded_proto: str | None
) -> None:
    """RTAP_DASHBOARD_TRUSTED_PROXIES is no promise that only the proxy reaches the port: a login that did not
    come over TLS is refused (403), whatever its password, before it is checked or counted as a failure."""
    refused = _login_from(warehouse, peer, forwarded_proto, private_network=False)
    assert refused.status_code == 403
    assert "Log in over https" in refused.text
    assert "set-cookie" not in refused.headers


def test_on_loopback_without_a_login_only_loopback_names_are_answered(
    warehouse: tuple[Settings, WarehouseClient],
) -> None:
    """DNS rebinding: a page whose name an attacker points at 127.0.0.1 could otherwise read every panel."""
    settings, reader = warehouse
    with serve_dashboard(settings, reader, port=0) as server:
        for host, status in (("evil.example", 421), ("evil.example:8050", 421), ("localhost:8050", 200)):
            answer = httpx.get(f"{server.url}/api/health", headers={"Host": host}, timeout=5)
            assert answer.status_code == status, host
        assert httpx.get(f"{server.url}/api/health", timeout=5).status_code == 200


def test_a_chunked_login_body_is_refused_once_past_the_limit_not_read_whole() -> None:
    pulled = 0

    async def receive() -> dict[str, object]:  # a chunked body without end: what a client may send pre-login
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"x" * 1024, "more_body": True}

    scope = {"type": "http", "method": "POST", "path": "/login", "headers": [(b"transfer-encoding", b"chunked")]}
    assert asyncio.run(read_login_body(Request(scope, receive))) is None
    assert pulled == MAX_LOGIN_BODY // 1024 + 1
