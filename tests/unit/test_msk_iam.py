"""MSK IAM's token callback for librdkafka: signed locally by AWS's signer, from a named profile or the default chain;
without the optional package, one line that names it."""

from __future__ import annotations

import base64
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from rtap.errors import DependencyError
from rtap.msk_iam import token_callback


def _signed_url(token: str) -> dict[str, list[str]]:
    url = urlparse(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
    assert url.scheme == "https"
    return {"host": [url.hostname or ""], **parse_qs(url.query)}


def test_a_named_profile_signs_for_its_region(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text("[analytics]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = profile-secret\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)

    token, expiry = token_callback("ap-southeast-2", "analytics")("")

    query = _signed_url(token)
    assert query["host"] == ["kafka.ap-southeast-2.amazonaws.com"]
    assert query["X-Amz-Credential"][0].startswith("AKIDPROFILE/")
    assert query["Action"] == ["kafka-cluster:Connect"]
    assert 0 < expiry - time.time() <= 900  # seconds since the epoch, as librdkafka's oauth_cb returns it


def test_without_the_signer_package_it_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aws_msk_iam_sasl_signer", None)  # what an install without rtap[msk] has
    with pytest.raises(DependencyError, match=r"pip install 'rtap\[msk\]'"):
        token_callback("eu-west-1")
