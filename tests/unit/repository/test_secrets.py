"""No secret in the repository: detect-secrets over every file git tracks, with an explicit allowlist.

Each allowlisted finding is a dummy value a test or a document needs, named by file and detector with the
number of findings expected there and why it is harmless. A new finding anywhere (or a new one in an
allowlisted file) fails the test: either remove the secret or add it here with its justification. A planted
secret proves the scanner is active, so an empty result cannot come from a broken or silenced scanner.
"""

from __future__ import annotations

import secrets
import string
import subprocess
from collections import Counter
from pathlib import Path

from detect_secrets.core.secrets_collection import SecretsCollection
from detect_secrets.settings import default_settings

REPO = Path(__file__).resolve().parents[3]

# (path, detector) -> (findings expected, why they are not secrets)
ALLOWED: dict[tuple[str, str], tuple[int, str]] = {
    ("docs/compose.md", "Secret Keyword"): (2, "tells the operator how to read the generated passwords from .env"),
    ("tests/unit/dashboard/test_auth.py", "Secret Keyword"): (2, "dummy passwords of the dashboard's login tests"),
    ("tests/support/metabase.py", "Secret Keyword"): (1, "an error message of the fake Metabase"),
    ("tests/unit/dashboard/metabase/test_provision.py", "Secret Keyword"): (1, "dummy password of a fake Metabase"),
    ("tests/unit/deploy/test_compose.py", "Base64 High Entropy String"): (1, "a placeholder .env line"),
    ("tests/unit/deploy/test_terraform.py", "Hex High Entropy String"): (1, "a made-up git commit id"),
    ("tests/unit/generate/test_generator_golden.py", "Hex High Entropy String"): (2, "sha256 of generator output"),
    ("tests/unit/test_settings.py", "Secret Keyword"): (2, "dummy SASL passwords read from the env"),
    ("tests/unit/test_settings_kafka_security.py", "Secret Keyword"): (4, "dummy SASL and key passwords"),
    ("tests/e2e/test_kafka_security.py", "Secret Keyword"): (2, "the test broker's SCRAM and client key passwords"),
    ("tests/e2e/test_up_external.py", "Secret Keyword"): (1, "the test broker's SCRAM password, random per run"),
    ("tests/integration/runtime/stack/test_preflight.py", "Secret Keyword"): (1, "the test broker's SCRAM password"),
    ("tests/unit/stream/test_spark.py", "Secret Keyword"): (1, "a dummy SASL password Spark must redact"),
    ("tests/unit/ops/test_checks.py", "Secret Keyword"): (2, "fake Metabase error text and wrong password"),
    ("tests/unit/warehouse/test_server.py", "Secret Keyword"): (1, "dummy ClickHouse password"),
}


def tracked_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True).stdout
    return [name for name in listed.decode().split("\0") if name and (REPO / name).is_file()]


def scan(root: Path, files: list[str]) -> Counter[tuple[str, str]]:
    """Findings per (path relative to ``root``, detector), with detect-secrets' default plugins and filters."""
    found: Counter[tuple[str, str]] = Counter()
    with default_settings():
        collection = SecretsCollection(root=str(root))
        for name in files:
            collection.scan_file(name)
        for filename, secret in collection:
            found[(filename, secret.type)] += 1
    return found


def test_no_secret_outside_the_allowlist() -> None:
    files = tracked_files()
    assert len(files) > 50, "git ls-files found almost nothing: not the rtap checkout?"
    found = scan(REPO, files)
    unexpected = {key: n for key, n in found.items() if n != ALLOWED.get(key, (0, ""))[0]}
    assert not unexpected, f"secrets found (or an allowlist entry is stale): {unexpected}"
    stale = {key for key in ALLOWED if key not in found}
    assert not stale, f"allowlisted findings no longer exist, drop them: {stale}"


def test_a_planted_secret_is_found(tmp_path: Path) -> None:
    """Control: the same scan flags realistic secrets (built at run time, so this file itself stays clean)."""
    alphabet = string.ascii_uppercase + string.digits
    aws_key = "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16))
    # Letters and digits only: detect-secrets' filters skip a value starting with "-", which token_urlsafe
    # produced about one run in sixty (a flaky control).
    password = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
    keyword = "pass" + "word"
    planted = tmp_path / "settings.py"
    planted.write_text(f'AWS_ACCESS_KEY_ID = "{aws_key}"\ndb_{keyword} = "{password}"\n', encoding="utf-8")
    found = scan(tmp_path, ["settings.py"])
    assert found[("settings.py", "AWS Access Key")] == 1
    assert found[("settings.py", "Secret Keyword")] >= 1
