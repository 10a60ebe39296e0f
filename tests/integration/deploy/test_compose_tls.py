"""The compose stack's TLS proxy (deploy/compose/tls/Caddyfile), run by a real Caddy in front of a real rtap
dashboard: the password and the session travel only inside TLS, the session cookie is Secure, Metabase's port
fails closed while its gate is down, and the collector's /metrics stays private. The compose network's names
become this test's loopback ports; nothing else of the file changes."""

from __future__ import annotations

import secrets
import ssl
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from rtap.dashboard.auth import SESSION_COOKIE
from rtap.dashboard.server import serve_dashboard
from rtap.settings import DashboardSettings, Settings
from tests.support.caddy import local_ca, needs_caddy, running_caddy
from tests.support.paths import REPO_ROOT, free_port
from tests.support.seed import seeded_warehouse

pytestmark = needs_caddy

CADDYFILE = REPO_ROOT / "deploy" / "compose" / "tls" / "Caddyfile"
PASSWORD = secrets.token_hex(16)  # must not cross a network in clear


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str, Path]]:
    """The dashboard behind the TLS proxy: the https base URLs of the dashboard, Metabase and the collector, and
    the proxy's local CA."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("rtap-tls-proxy"))
    dashboard = DashboardSettings.model_validate(
        {"password": SecretStr(PASSWORD), "trusted_proxies": ["127.0.0.1"]}  # Caddy, as the ui network's proxy
    )
    settings = settings.model_copy(update={"dashboard": dashboard})
    data = tmp_path_factory.mktemp("caddy")
    dashboard_tls, metabase_tls = free_port(), free_port()
    with (
        seeded_warehouse(settings, datetime.now(UTC) - timedelta(seconds=1)) as (_, reader),
        serve_dashboard(settings, reader, port=0) as server,
    ):
        replacements = {
            ":9443 {": f":{dashboard_tls} {{",
            ":3443 {": f":{metabase_tls} {{",
            "dashboard:8050": f"127.0.0.1:{server.port}",
            "metabase-gate:3000": f"127.0.0.1:{free_port()}",  # the gate is down: Metabase unclaimed
            "collector:8070": f"127.0.0.1:{free_port()}",
        }
        with running_caddy(CADDYFILE, replacements, {"RTAP_COLLECTOR_SITE": "localhost"}, data) as (_, https_port):
            urls = (f"https://localhost:{port}" for port in (dashboard_tls, metabase_tls, https_port))
            dashboard_url, metabase_url, collector_url = urls
            _wait_for_certificates(local_ca(data), dashboard_url, metabase_url, collector_url)
            yield dashboard_url, metabase_url, collector_url, local_ca(data)


def _client(ca: Path) -> httpx.Client:
    """A client that trusts the proxy's local CA only, as a browser would once that CA is added."""
    return httpx.Client(verify=ssl.create_default_context(cafile=ca), timeout=10, follow_redirects=False)


def _wait_for_certificates(ca: Path, *urls: str) -> None:
    """Caddy makes its local CA, then each site's certificate, while it already listens."""
    deadline = time.monotonic() + 60
    for url in urls:
        while True:
            try:
                with _client(ca) as client:
                    client.get(url)
                break
            except (OSError, httpx.TransportError):  # no CA file yet, or the handshake before the certificate
                assert time.monotonic() < deadline, f"no certificate for {url} within 60 s"
                time.sleep(0.2)


def test_the_dashboard_login_and_session_travel_only_inside_tls(proxied: tuple[str, str, str, Path]) -> None:
    dashboard, _, _, ca = proxied
    with _client(ca) as browser:
        assert browser.get(f"{dashboard}/api/health").status_code == 200
        assert browser.get(f"{dashboard}/openapi.json").status_code == 401  # no session yet
        login = browser.post(f"{dashboard}/login", data={"password": PASSWORD})
        assert login.status_code == 303
        cookie = login.headers["set-cookie"]
        assert cookie.startswith(f"{SESSION_COOKIE}=")
        assert "; secure" in cookie.lower()  # the proxy says the browser came over TLS: never sent in clear
        assert browser.get(f"{dashboard}/openapi.json").status_code == 200
    plain = httpx.get(dashboard.replace("https:", "http:") + "/api/health", timeout=10)
    assert plain.status_code == 400  # Caddy's answer to plain HTTP on a TLS port; the dashboard is not reached


def test_metabase_fails_closed_until_its_gate_runs_and_the_collector_keeps_its_metrics(
    proxied: tuple[str, str, str, Path],
) -> None:
    _, metabase, collector, ca = proxied
    with _client(ca) as browser:
        assert browser.get(f"{metabase}/api/session/properties").status_code == 502
        assert browser.get(f"{collector}/metrics").status_code == 404
