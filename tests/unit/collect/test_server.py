"""The collector's own /metrics: open on loopback, behind RTAP_METRICS_PASSWORD when it is set, and not served
beyond loopback without one (the collector is the public door, its counters are not)."""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from rtap.collect.routes import create_app
from rtap.collect.server import check_exposure, metrics_access
from rtap.collect.sinks.kafka import KafkaSink
from rtap.metrics.collector import CollectorMetrics
from rtap.settings import CollectorSettings, KafkaSettings, MetricsSettings, SiteKey

PUBLIC = CollectorSettings(_env_file=None, host="0.0.0.0", write_keys={"k": SiteKey(site="s")})  # type: ignore[call-arg]
LOCAL = CollectorSettings(_env_file=None)  # type: ignore[call-arg]
OPEN = MetricsSettings(_env_file=None)  # type: ignore[call-arg]
GUARDED = MetricsSettings(_env_file=None, password=SecretStr("s3cret"))  # type: ignore[call-arg]
# compose's: the password may cross its bridge network, which stays on the host
GUARDED_PRIVATE = MetricsSettings(_env_file=None, password=SecretStr("s3cret"), private_network=True)  # type: ignore[call-arg]


def _metrics_answers(collect: CollectorSettings, metrics: MetricsSettings, *auths: tuple[str, str] | None) -> list[int]:
    """The status of ``GET /metrics`` with each of ``auths``, from the app as rtap.collect.server builds it (a real
    Kafka sink, started with the app; no broker is needed to answer /metrics)."""
    serve, scrape = metrics_access(collect, metrics)
    kafka = KafkaSettings(_env_file=None, bootstrap_servers="127.0.0.1:1")  # type: ignore[call-arg]
    app = create_app(
        collect, KafkaSink(kafka, collect, CollectorMetrics()), port=8070, scrape=scrape, serve_metrics=serve
    )
    with TestClient(app) as client:
        return [client.get("/metrics", auth=auth).status_code for auth in auths]


def test_on_loopback_metrics_are_open_unless_a_password_is_set() -> None:
    assert _metrics_answers(LOCAL, OPEN, None) == [200]
    assert _metrics_answers(LOCAL, GUARDED, None, ("prometheus", "nope"), ("prometheus", "s3cret")) == [401, 401, 200]


def test_beyond_loopback_metrics_are_served_only_behind_the_password_on_a_private_network(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert _metrics_answers(PUBLIC, GUARDED_PRIVATE, None, ("prometheus", "s3cret")) == [401, 200]
    assert _metrics_answers(PUBLIC, OPEN, None, ("prometheus", "s3cret")) == [404, 404]
    # the collector has no TLS of its own: the password would cross an open network in clear
    assert _metrics_answers(PUBLIC, GUARDED, ("prometheus", "s3cret")) == [404]
    with caplog.at_level(logging.WARNING, logger="rtap.collect"):
        check_exposure(PUBLIC, GUARDED_PRIVATE)
        check_exposure(PUBLIC, OPEN)
    said = [record.getMessage() for record in caplog.records if record.module == "server"]  # not the sink's
    assert said == [
        "the collector listens on 0.0.0.0: its /metrics is served there only with RTAP_METRICS_PASSWORD on a "
        "network that stays on this host (RTAP_METRICS_PRIVATE_NETWORK=true), so it is not served"
    ]
