"""`rtap up --profile external` on a Kafka cluster it did not start and may not administer: a real broker set up as a
team's would be (tests/support/acl_kafka.py: SASL_SSL, SCRAM, Kafka's StandardAuthorizer), whose administrator
created rtap's topics and granted its login READ and WRITE on them, nothing more (no CREATE, no consumer group
ACL). The stack starts no broker, runs its preflight, reads the input, writes dead letters, and every table
equals the generator's truth."""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path

import pytest
from confluent_kafka.admin import AclOperation  # type: ignore[attr-defined]  # not in the stubs

from rtap.ingest.topics import ensure_topics
from rtap.runtime.broker.config import BROKER_MAIN
from tests.support.acl_kafka import acl_kafka
from tests.support.pipeline import UpProcess, assert_tables_equal_truth, produce

pytestmark = pytest.mark.timeout(900)

USER, PASSWORD = "rtap-job", secrets.token_hex(12)
EVENTS = 3_000


def test_up_external_runs_the_pipeline_on_a_cluster_it_did_not_start(tmp_path: Path) -> None:
    with acl_kafka(tmp_path / "cluster", {USER: PASSWORD}) as cluster:
        prefix = f"ext-{uuid.uuid4().hex[:8]}"
        names = {"topic": f"{prefix}.events", "browser_topic": f"{prefix}.browser", "dlq_topic": f"{prefix}.dlq"}
        ensure_topics(cluster.admin.model_copy(update=names))  # the cluster's administrator creates them
        cluster.allow(USER, prefix, AclOperation.READ, AclOperation.WRITE)
        # Two addresses in the bootstrap list (the broker's two names, both in its certificate): `rtap up` with its
        # own broker refuses a list; external mode hands it to every client.
        port = cluster.sasl_ssl.rpartition(":")[2]
        kafka = cluster.login(USER, PASSWORD, bootstrap_servers=f"{cluster.sasl_ssl},localhost:{port}", **names)

        up = UpProcess(tmp_path, external=kafka)
        try:
            up.wait_console("Spark stream job running")
            console = up.console()
            assert f"Kafka: the existing cluster at {kafka.bootstrap_servers} (SASL_SSL), nothing started" in console
            assert "Kafka broker on" not in console
            assert "Generator producing" not in console  # external mode writes generated events only when asked
            assert not up.children(BROKER_MAIN)  # no broker child

            truth = produce(up.settings, count=EVENTS, seed=11)
            produced = truth.totals().produced
            up.wait_for(f"{produced} records processed", lambda: up.processed() >= produced)
            assert up.stop() == 0, up.console()
        finally:
            up.kill()
        assert_tables_equal_truth(up.settings, truth)
        assert PASSWORD not in up.console() + up.log()
