"""The metrics endpoint: Prometheus' text format on loopback, a taken port refused in one line."""

from __future__ import annotations

import httpx
import pytest

from rtap.errors import PortInUseError
from rtap.metrics import ProducerMetrics, serve_metrics, serving
from rtap.settings import MetricsSettings
from tests.support.paths import taken_port


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
