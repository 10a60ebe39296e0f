"""deploy/aws.mk: the lifecycle targets, run by make with recording stand-ins for terraform and ssh.

The point under test is the control flow (what runs, with which variables, that aws-e2e always
destroys, which key aws-validate logs in with, what aws-down leaves standing), not AWS: the stand-ins
record their arguments and the TF_VAR_* they received, answer what a scenario says (outputs, the state's
addresses, an SSH refusal), and fail where it says so. No address is ever contacted.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")

FAKE_TERRAFORM = """#!/bin/bash
# Record the subcommand (after -chdir) and the Terraform variables passed in the environment.
shift
echo "$1 admin=${TF_VAR_admin_cidr:-} key=${TF_VAR_public_key_path:-} ref=${TF_VAR_repo_ref:-}" >>"$FAKE_LOG"
echo "$*" >>"$FAKE_LOG.args"
env | grep '^TF_VAR_' | sort >"$FAKE_LOG.$1.env"
case "$1" in
  apply) exit "${FAKE_APPLY_RC:-0}" ;;
  output)
    [ "$3" = public_ip ] && [ -n "${FAKE_IP:-}" ] && echo -n "$FAKE_IP" && exit 0
    answer="FAKE_OUTPUT_$3"; [ -n "${!answer:-}" ] && echo -n "${!answer}" && exit 0
    exit 1 ;;
  state)
    if [ "$2" = list ]; then for address in ${FAKE_STATE:-}; do [ "$address" = "$3" ] && echo "$address"; done; fi
    if [ "$2" = rm ]; then exit "${FAKE_STATE_RM_RC:-0}"; fi ;;
esac
exit 0
"""
# The host as ssh sees it: accepts (and answers the Metabase password query) or refuses the key.
FAKE_SSH = """#!/bin/bash
echo "$*" >>"$FAKE_SSH_LOG"
if [ "${FAKE_SSH_REFUSE:-}" = 1 ]; then echo "ubuntu@192.0.2.10: Permission denied (publickey)." >&2; exit 255; fi
case "$*" in *"RTAP_METABASE_ADMIN_PASSWORD"*) echo "generated-metabase-password" ;; esac
case "$*" in *"RTAP_DASHBOARD_PASSWORD"*) echo "generated-dashboard-password" ;; esac
exit 0
"""
# rtap validate: records what it was asked to check and with which passwords.
FAKE_RTAP = """#!/bin/bash
echo "$* password=${RTAP_METABASE_ADMIN_PASSWORD:-} dashboard=${RTAP_DASHBOARD_PASSWORD:-}" >>"$FAKE_RTAP_LOG"
"""


@pytest.fixture
def lifecycle(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, script in {"terraform": FAKE_TERRAFORM, "ssh": FAKE_SSH, "rtap": FAKE_RTAP}.items():
        fake = bin_dir / name
        fake.write_text(script)
        fake.chmod(0o755)
    wrapper = tmp_path / "Makefile"
    # What the project Makefile provides to the included file.
    wrapper.write_text(f"SHELL := /bin/bash\nBIN := {ROOT}/.venv/bin\ninclude {ROOT}/deploy/aws.mk\n")
    log = tmp_path / "terraform.log"
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "FAKE_LOG": str(log),
        "FAKE_SSH_LOG": str(tmp_path / "ssh.log"),
        "FAKE_RTAP_LOG": str(tmp_path / "rtap.log"),
    }
    return wrapper, log, env


def make(
    wrapper: Path, target: str, env: dict[str, str], variables: dict[str, str | None] | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    """make TARGET with the given make variables (over defaults for a new key pair) and environment."""
    variables = {
        "AWS_ADMIN_CIDR": "203.0.113.7/32",
        "AWS_PUBLIC_KEY": "/keys/id_ed25519.pub",
        "AWS_REPO_URL": "https://github.com/example/rtap.git",
        "AWS_REPO_REF": "v0.1.0",
        **(variables or {}),
    }
    args = [f"{name}={value}" for name, value in variables.items() if value is not None]
    return subprocess.run(
        ["make", "-f", str(wrapper), "-C", str(ROOT), target, *args],
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def commands(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_aws_up_initialises_then_applies_with_the_variables(lifecycle: tuple[Path, Path, dict[str, str]]) -> None:
    wrapper, log, env = lifecycle
    result = make(wrapper, "aws-up", env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert commands(log) == [
        "init admin= key= ref=",
        "apply admin=203.0.113.7/32 key=/keys/id_ed25519.pub ref=v0.1.0",
    ]


def test_aws_plan_shows_the_plan_with_the_same_variables(lifecycle: tuple[Path, Path, dict[str, str]]) -> None:
    wrapper, log, env = lifecycle
    result = make(wrapper, "aws-plan", env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert commands(log) == ["init admin= key= ref=", "plan admin=203.0.113.7/32 key=/keys/id_ed25519.pub ref=v0.1.0"]


def test_aws_e2e_destroys_when_apply_fails(lifecycle: tuple[Path, Path, dict[str, str]]) -> None:
    wrapper, log, env = lifecycle
    result = make(wrapper, "aws-e2e", env, FAKE_APPLY_RC="1")
    assert result.returncode != 0
    assert [line.split()[0] for line in commands(log)] == ["init", "apply", "init", "destroy"]
    assert commands(log)[-1] == "destroy admin=203.0.113.7/32 key=/keys/id_ed25519.pub ref=v0.1.0"
    assert "aws-e2e: destroying" in result.stdout


def test_aws_e2e_destroys_when_validation_fails(lifecycle: tuple[Path, Path, dict[str, str]]) -> None:
    wrapper, log, env = lifecycle
    # No public_ip output: aws-validate fails before contacting any host.
    result = make(wrapper, "aws-e2e", env)
    assert result.returncode != 0
    assert [line.split()[0] for line in commands(log)] == ["init", "apply", "output", "init", "destroy"]
    assert "nothing deployed" in result.stdout + result.stderr


def test_aws_check_refuses_an_unknown_admin_address(lifecycle: tuple[Path, Path, dict[str, str]]) -> None:
    wrapper, log, env = lifecycle
    result = subprocess.run(
        ["make", "-f", str(wrapper), "-C", str(ROOT), "aws-up", "AWS_ADMIN_CIDR=/32", "AWS_REPO_URL=https://x/y.git"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "could not work out your address" in result.stdout
    assert commands(log) == []


def tf_env(log: Path, subcommand: str) -> dict[str, str]:
    """The TF_VAR_* terraform received on its last run of ``subcommand``."""
    lines = (log.parent / f"{log.name}.{subcommand}.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


# The previous system's set-up: its region, and a key pair created by hand in the console, adopted by name.
# No AWS_PUBLIC_KEY: with AWS_KEY_NAME, make has no public key to pass.
PREVIOUS_SETUP: dict[str, str | None] = {
    "AWS_REGION": "us-west-2",
    "AWS_KEY_NAME": "legacy-key",
    "AWS_PUBLIC_KEY": None,
}


def test_aws_up_adopts_a_key_pair_made_by_hand_by_name(lifecycle: tuple[Path, Path, dict[str, str]]) -> None:
    wrapper, log, env = lifecycle
    result = make(wrapper, "aws-up", env, PREVIOUS_SETUP)
    assert result.returncode == 0, result.stdout + result.stderr
    applied = tf_env(log, "apply")
    assert applied["TF_VAR_region"] == "us-west-2"
    assert applied["TF_VAR_existing_key_name"] == "legacy-key"
    assert "TF_VAR_public_key_path" not in applied


def deployed(tmp_path: Path, key: Path | None, collector_url: str = "https://192.0.2.10") -> dict[str, str]:
    """Terraform's outputs of a deployed host whose private key is ``key``."""
    outputs = {
        "FAKE_IP": "192.0.2.10",
        "FAKE_OUTPUT_key_name": "legacy-key",
        "FAKE_OUTPUT_collector_url": collector_url,
    }
    if key is not None:
        outputs["FAKE_OUTPUT_ssh_private_key"] = str(key)
    return outputs


def ssh_calls(env: dict[str, str]) -> list[str]:
    path = Path(env["FAKE_SSH_LOG"])
    return path.read_text().splitlines() if path.exists() else []


def test_aws_validate_logs_in_with_the_adopted_key_pairs_private_key(
    lifecycle: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    """The bug this guards: with a key pair adopted by name, aws-validate ran `ssh -i ''` until its timeout."""
    wrapper, _log, env = lifecycle
    key = tmp_path / ".ssh" / "legacy-key.pem"
    key.parent.mkdir()
    key.write_text("private key\n")
    key.chmod(0o400)
    result = make(
        wrapper, "aws-validate", env, {**PREVIOUS_SETUP, "BIN": str(tmp_path / "bin")}, **deployed(tmp_path, key)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    calls = ssh_calls(env)
    assert calls, "ssh never ran"
    assert all(call.startswith(f"-i {key} -o IdentitiesOnly=yes ") for call in calls), calls
    assert all("ubuntu@192.0.2.10" in call.split() for call in calls), calls
    validated = Path(env["FAKE_RTAP_LOG"]).read_text().splitlines()
    assert len(validated) == 1
    # Through an SSH tunnel to the host's loopback: no password crosses the internet in plain HTTP.
    assert validated[0].startswith("validate --target http://127.0.0.1:18050 --metabase http://127.0.0.1:13000 ")
    # Only the collector, which takes no password, is reached at the host's public address (through TLS).
    assert validated[0].count("192.0.2.10") == 1
    assert "--collector https://192.0.2.10 " in validated[0]
    assert validated[0].endswith("password=generated-metabase-password dashboard=generated-dashboard-password")
    (tunnel,) = [call for call in calls if " -L " in call]
    assert " -f -N -M -S " in tunnel
    assert "-o ExitOnForwardFailure=yes" in tunnel
    assert (
        "-L 127.0.0.1:18050:127.0.0.1:8050 -L 127.0.0.1:13000:127.0.0.1:3000 -L 127.0.0.1:18070:127.0.0.1:8070 "
        in tunnel
    )
    assert calls[-1].endswith(" -O exit ubuntu@192.0.2.10"), "the tunnel is closed at the end"


@pytest.mark.parametrize(
    ("collector_url", "expected"),
    [
        # Published, no domain: over the internet, through TLS, checked against Caddy's local CA from the host.
        ("https://192.0.2.10", "--collector https://192.0.2.10 --collector-ca "),
        # Published with a domain: a Let's Encrypt certificate, checked against the system's CAs.
        ("https://collect.shop.example", "--collector https://collect.shop.example --wait-s"),
        # Not published: on the host's loopback, through the tunnel.
        ("http://127.0.0.1:8070", "--collector http://127.0.0.1:18070 --wait-s"),
    ],
)
def test_aws_validate_posts_through_the_collector_as_published(
    lifecycle: tuple[Path, Path, dict[str, str]], tmp_path: Path, collector_url: str, expected: str
) -> None:
    wrapper, _log, env = lifecycle
    key = tmp_path / "host.pem"
    key.write_text("private key\n")
    variables = {**PREVIOUS_SETUP, "BIN": str(tmp_path / "bin"), "AWS_SSH_KEY": str(key)}
    result = make(wrapper, "aws-validate", env, variables, **deployed(tmp_path, key, collector_url))
    assert result.returncode == 0, result.stdout + result.stderr
    (validated,) = Path(env["FAKE_RTAP_LOG"]).read_text().splitlines()
    assert expected in validated
    fetched_ca = [call for call in ssh_calls(env) if "root.crt" in call]
    assert bool(fetched_ca) == ("--collector-ca" in expected)


def test_aws_ssh_key_overrides_the_deployments_key(
    lifecycle: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    wrapper, _log, env = lifecycle
    chosen = tmp_path / "chosen.pem"
    chosen.write_text("private key\n")
    variables = {**PREVIOUS_SETUP, "BIN": str(tmp_path / "bin"), "AWS_SSH_KEY": str(chosen)}
    result = make(wrapper, "aws-validate", env, variables, **deployed(tmp_path, tmp_path / "missing.pem"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert all(call.startswith(f"-i {chosen} ") for call in ssh_calls(env))


def test_aws_validate_stops_at_once_without_the_private_key(
    lifecycle: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    wrapper, _log, env = lifecycle
    missing = tmp_path / ".ssh" / "legacy-key.pem"
    # A wait of an hour: the test's own timeout (60 s) proves it did not wait.
    variables = {**PREVIOUS_SETUP, "BIN": str(tmp_path / "bin"), "AWS_WAIT_S": "3600"}
    result = make(wrapper, "aws-validate", env, variables, **deployed(tmp_path, missing))
    assert result.returncode != 0
    assert f"error: no private key at {missing} for key pair legacy-key: set AWS_SSH_KEY=" in result.stdout
    assert ssh_calls(env) == []


def test_aws_validate_stops_when_the_host_keeps_refusing_the_key(
    lifecycle: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    wrapper, _log, env = lifecycle
    wrong = tmp_path / "wrong.pem"
    wrong.write_text("another private key\n")
    variables = {
        **PREVIOUS_SETUP,
        "BIN": str(tmp_path / "bin"),
        "AWS_WAIT_S": "3600",
        "AWS_SSH_RETRY_S": "0",
        "AWS_SSH_REFUSALS": "3",
    }
    result = make(wrapper, "aws-validate", env, variables, FAKE_SSH_REFUSE="1", **deployed(tmp_path, wrong))
    assert result.returncode != 0
    assert "refuses the key" in result.stdout
    assert "3 times in a row (is it the private key of key pair legacy-key?)" in result.stdout
    assert "Permission denied (publickey)" in result.stdout
    assert len(ssh_calls(env)) == 3
    assert not Path(env["FAKE_RTAP_LOG"]).exists()


def terraform_with_adopted_resources(tmp_path: Path) -> Path:
    """A copy of deploy/terraform with adopted.tf.example in place: resources made by hand, imported."""
    tf_dir = tmp_path / "terraform"
    shutil.copytree(ROOT / "deploy" / "terraform", tf_dir, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    shutil.copy(tf_dir / "adopted.tf.example", tf_dir / "adopted.tf")
    return tf_dir


def test_aws_down_keeps_what_an_import_block_brought_in(
    lifecycle: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    """docs/aws.md: a resource made by hand and imported stays in AWS; it only leaves Terraform's state."""
    wrapper, log, env = lifecycle
    tf_dir = terraform_with_adopted_resources(tmp_path)
    state = "aws_instance.host aws_s3_bucket.exports aws_vpc.main"
    result = make(wrapper, "aws-down", env, {"AWS_TF_DIR": str(tf_dir)}, FAKE_STATE=state)
    assert result.returncode == 0, result.stdout + result.stderr
    calls = (log.parent / f"{log.name}.args").read_text().splitlines()
    assert calls == [
        "init -input=false",
        "state list aws_s3_bucket.exports",
        "state rm aws_s3_bucket.exports",
        calls[-1],
    ]
    assert calls[-1].startswith("destroy ")
    assert "kept aws_s3_bucket.exports (imported): removed from the state, not destroyed" in result.stdout


def test_aws_down_without_import_blocks_only_destroys(lifecycle: tuple[Path, Path, dict[str, str]]) -> None:
    wrapper, log, env = lifecycle
    result = make(wrapper, "aws-down", env, FAKE_STATE="aws_instance.host")
    assert result.returncode == 0, result.stdout + result.stderr
    calls = (log.parent / f"{log.name}.args").read_text().splitlines()
    assert [call.split()[0] for call in calls] == ["init", "destroy"]


def test_aws_down_destroys_nothing_when_an_imported_resource_cannot_leave_the_state(
    lifecycle: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    wrapper, log, env = lifecycle
    tf_dir = terraform_with_adopted_resources(tmp_path)
    variables: dict[str, str | None] = {"AWS_TF_DIR": str(tf_dir)}
    result = make(wrapper, "aws-down", env, variables, FAKE_STATE="aws_s3_bucket.exports", FAKE_STATE_RM_RC="1")
    assert result.returncode != 0
    assert "could not take aws_s3_bucket.exports out of the state, so nothing was destroyed" in result.stdout
    assert "destroy" not in [call.split()[0] for call in (log.parent / f"{log.name}.args").read_text().splitlines()]
