"""Who may read the Spark UI: the refusal beyond loopback without a secret, the token, and the session settings
that install Spark's JWSFilter. A real Spark checks the token in tests/e2e/test_prometheus.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from rtap.errors import ConfigError
from rtap.settings import JAVA_REDACTION_REGEX, StreamSettings
from rtap.stream import ui

SECRET = SecretStr("0123456789abcdef" * 3)


def _stream(**values: Any) -> StreamSettings:
    return StreamSettings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("host", "master"),
    [("0.0.0.0", "local[*]"), ("10.0.0.5", "local[2]"), ("127.0.0.1", "spark://spark-master:7077")],
)
def test_beyond_loopback_the_ui_needs_a_secret(host: str, master: str) -> None:
    with pytest.raises(ConfigError, match="RTAP_STREAM_UI_SECRET") as refused:
        ui.check_exposure(_stream(ui_host=host, master=master))
    assert "\n" not in str(refused.value)
    ui.check_exposure(_stream(ui_host=host, master=master, ui_secret=SECRET))


@pytest.mark.parametrize("master", ["local[*]", "spark://127.0.0.1:7077", "spark://localhost:7077"])
def test_on_loopback_with_executors_on_this_machine_no_secret_is_needed(master: str) -> None:
    ui.check_exposure(_stream(master=master))
    assert ui.authorization(_stream(master=master)) == {}


def test_a_secret_shorter_than_an_hs256_key_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 32 characters"):
        _stream(ui_secret=SecretStr("x" * 31))


def test_the_token_is_a_compact_hs256_jws_signed_with_the_secret() -> None:
    header, claims, signature = ui.token(SECRET).split(".")

    def decoded(part: str) -> bytes:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    assert json.loads(decoded(header)) == {"alg": "HS256", "typ": "JWT"}
    assert json.loads(decoded(claims)) == {"sub": "rtap"}
    expected = hmac.new(SECRET.get_secret_value().encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
    assert decoded(signature) == expected
    assert "=" not in signature
    assert ui.authorization(_stream(ui_secret=SECRET)) == {"Authorization": f"Bearer {ui.token(SECRET)}"}
    assert ui.token(SecretStr("another secret of enough length, 40 chars")) != ui.token(SECRET)


def test_the_filter_gets_the_secret_as_its_key_and_spark_redacts_it() -> None:
    config = ui.spark_config(SECRET)
    assert config["spark.ui.filters"] == "org.apache.spark.ui.JWSFilter"
    (key,) = (name for name in config if name != "spark.ui.filters")
    assert key == "spark.org.apache.spark.ui.JWSFilter.param.secretKey"
    assert base64.urlsafe_b64decode(config[key] + "=" * (-len(config[key]) % 4)) == SECRET.get_secret_value().encode()
    assert re.search(JAVA_REDACTION_REGEX, key)  # shown as *********(redacted) in the UI's environment page


def test_rtap_stream_prints_the_token_or_refuses_in_one_line() -> None:
    env = {**os.environ, "RTAP_METRICS_ENABLED": "false"}
    env.pop("RTAP_STREAM_UI_SECRET", None)
    printed = subprocess.run(
        [sys.executable, "-m", "rtap", "stream", "--ui-token"],
        env={**env, "RTAP_STREAM_UI_SECRET": SECRET.get_secret_value()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == ui.token(SECRET) + "\n"
    refused = subprocess.run(
        [sys.executable, "-m", "rtap", "stream"],
        env={**env, "RTAP_STREAM_UI_HOST": "0.0.0.0"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.startswith("error: the Spark UI would listen on 0.0.0.0, beyond loopback")
    assert len(refused.stderr.strip().splitlines()) == 1


def test_every_session_rtap_builds_checks_first_so_no_path_skips_the_refusal() -> None:
    """`rtap jvm archive` (run by `make install`) builds its session without `rtap stream`'s check."""
    from rtap.settings import Settings
    from rtap.stream.spark import build_session

    exposed = Settings().model_copy(update={"stream": _stream(ui_host="0.0.0.0")})
    with pytest.raises(ConfigError, match=r"the Spark UI would listen on 0\.0\.0\.0"):
        build_session(exposed)  # before any JVM starts
