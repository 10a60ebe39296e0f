"""The metrics endpoint: Prometheus' text format on loopback, a taken port refused in one line; beyond loopback
only with a password every scrape presents (basic auth), and TLS when given a certificate."""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from rtap.errors import ConfigError, PortInUseError
from rtap.metrics import ProducerMetrics, serve_metrics, serving
from rtap.settings import MetricsSettings
from tests.support.paths import taken_port
from tests.support.tls import make_certificates


def test_serves_the_given_collectors_and_the_process_in_the_text_format() -> None:
    producer = ProducerMetrics()
    producer.sent.inc(5)
    endpoint = serve_metrics(MetricsSettings(), 0, producer)
    assert endpoint is not None
    try:
        assert endpoint.host == "127.0.0.1"  # loopback unless configured
        response = httpx.get(endpoint.url, timeout=5)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        lines = response.text.splitlines()
        assert "# TYPE rtap_producer_records_sent_total counter" in lines
        assert "rtap_producer_records_sent_total 5.0" in lines
        assert any(line.startswith("process_start_time_seconds ") for line in lines)
        assert not any("_created" in line for line in lines)
    finally:
        endpoint.stop()
    with pytest.raises(httpx.TransportError):
        httpx.get(endpoint.url, timeout=2)


def test_a_taken_port_is_one_clear_error() -> None:
    with taken_port() as port, pytest.raises(PortInUseError, match=f"127.0.0.1:{port} for the metrics endpoint"):
        serve_metrics(MetricsSettings(), port)


def test_disabled_serves_nothing() -> None:
    with serving(MetricsSettings(enabled=False), 0, ProducerMetrics()) as endpoint:
        assert endpoint is None


def test_a_password_makes_every_scrape_present_it() -> None:
    settings = MetricsSettings(_env_file=None, password=SecretStr("s3cret"))  # type: ignore[call-arg]
    with serving(settings, 0, ProducerMetrics()) as endpoint:
        assert endpoint is not None
        for auth in (None, ("prometheus", "wrong"), ("someone", "s3cret")):
            refused = httpx.get(endpoint.url, auth=auth, timeout=5)
            assert refused.status_code == 401, auth
            assert refused.headers["www-authenticate"].startswith('Basic realm="rtap metrics"')
            assert "rtap_producer" not in refused.text
        scraped = httpx.get(endpoint.url, auth=("prometheus", "s3cret"), timeout=5)
        assert scraped.status_code == 200
        assert "rtap_producer_records_sent_total" in scraped.text


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "metrics.example"])
def test_beyond_loopback_the_settings_refuse_to_serve_without_a_password_or_in_clear(host: str) -> None:
    with pytest.raises(ValidationError, match=f"RTAP_METRICS_HOST={host} is beyond loopback") as refused:
        MetricsSettings(_env_file=None, host=host)  # type: ignore[call-arg]
    assert "RTAP_METRICS_PASSWORD" in str(refused.value)
    with pytest.raises(ValidationError, match="the scrape password would cross the network in clear"):
        MetricsSettings(_env_file=None, host=host, password=SecretStr("p"))  # type: ignore[call-arg]
    MetricsSettings(_env_file=None, host=host, password=SecretStr("p"), private_network=True)  # type: ignore[call-arg]
    MetricsSettings(
        _env_file=None,  # type: ignore[call-arg]
        host=host,
        password=SecretStr("p"),
        tls_certificate_file=Path("c.pem"),
        tls_key_file=Path("k.pem"),
    )
    MetricsSettings(_env_file=None, host=host, enabled=False)  # type: ignore[call-arg]
    for loopback in ("127.0.0.1", "::1", "localhost"):
        MetricsSettings(_env_file=None, host=loopback)  # type: ignore[call-arg]


def test_with_a_certificate_the_endpoint_speaks_only_tls_and_a_silent_peer_holds_up_no_scrape(tmp_path: Path) -> None:
    certificates = make_certificates(tmp_path)
    settings = MetricsSettings(
        _env_file=None,  # type: ignore[call-arg]
        password=SecretStr("s3cret"),
        tls_certificate_file=certificates.broker_certificate,
        tls_key_file=certificates.broker_key,
    )
    with serving(settings, 0, ProducerMetrics()) as endpoint:
        assert endpoint is not None
        assert endpoint.url.startswith("https://127.0.0.1:")
        with socket.create_connection((endpoint.host, endpoint.port)):  # connects, never says hello
            scraped = httpx.get(
                endpoint.url,
                auth=("prometheus", "s3cret"),
                verify=ssl.create_default_context(cafile=certificates.ca),
                timeout=5,
            )
        assert scraped.status_code == 200
        assert "rtap_producer_records_sent_total" in scraped.text
        with pytest.raises(httpx.TransportError):
            httpx.get(endpoint.url.replace("https:", "http:"), auth=("prometheus", "s3cret"), timeout=5)


def test_unusable_tls_files_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="go together"):
        MetricsSettings(_env_file=None, tls_certificate_file=tmp_path / "c.pem")  # type: ignore[call-arg]
    (tmp_path / "c.pem").write_text("not a certificate")
    settings = MetricsSettings(
        _env_file=None,  # type: ignore[call-arg]
        tls_certificate_file=tmp_path / "c.pem",
        tls_key_file=tmp_path / "k.pem",
    )
    with pytest.raises(ConfigError, match=r"TLS certificate .*c\.pem and key .*k\.pem cannot be used"):
        serve_metrics(settings, 0)


def test_without_a_password_on_loopback_only_loopback_names_are_answered() -> None:
    """DNS rebinding: a page whose name an attacker points at 127.0.0.1 sends that name as its Host."""
    with serving(MetricsSettings(_env_file=None), 0, ProducerMetrics()) as endpoint:  # type: ignore[call-arg]
        assert endpoint is not None
        for host, status in (("evil.example", 421), (f"evil.example:{endpoint.port}", 421), ("localhost", 200)):
            assert httpx.get(endpoint.url, headers={"Host": host}, timeout=5).status_code == status, host


def test_connections_beyond_the_bound_are_closed_and_scrapes_go_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("rtap.metrics.endpoint.MAX_CONNECTIONS", 2)
    with serving(MetricsSettings(_env_file=None), 0, ProducerMetrics()) as endpoint:  # type: ignore[call-arg]
        assert endpoint is not None
        held = [socket.create_connection((endpoint.host, endpoint.port)) for _ in range(2)]  # silent peers
        try:
            extra = socket.create_connection((endpoint.host, endpoint.port), timeout=5)
            assert extra.recv(1) == b""  # closed at once: no thread for it
            extra.close()
        finally:
            for peer in held:
                peer.close()
        deadline = time.monotonic() + 10
        while True:  # the held connections' threads end as their peers close
            try:
                if httpx.get(endpoint.url, timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "no slot came back"
            time.sleep(0.1)
