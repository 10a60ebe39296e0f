"""Static checks of deploy/terraform: what can be proven here without AWS or provider downloads.

- ``terraform fmt -check`` and the variable validations, evaluated by the real Terraform binary
  (``terraform console`` over variables.tf alone needs no providers);
- the security properties, read from the HCL with python-hcl2;
- checkov, with zero failed checks and every skip written inline with its reason;
- the user_data template, rendered like templatefile() does (and by Terraform itself when it is
  installed), checked with shellcheck and against EC2's 16 KB user-data limit.

``terraform validate``/``plan`` need the AWS provider (a download) and credentials: see docs/aws.md for
what is therefore verified only by a real deployment.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hcl2
import pytest

ROOT = Path(__file__).resolve().parents[3]
TF_DIR = ROOT / "deploy" / "terraform"
TEMPLATE = TF_DIR / "user_data.sh.tftpl"
CHECKOV = ROOT / ".venv-tools" / "bin" / "checkov"
# EC2 refuses user data above 16 KB (before base64).
USER_DATA_LIMIT = 16 * 1024
UI_PORTS = {8050, 3000, 4040}
# What publish_web_uis may open: the UIs with a login, over TLS (the host's Caddy). Their plain ports and the
# Spark UI never.
LOGIN_UIS = {9443, 3443}
# Kafka, ClickHouse (HTTP, native, interserver, TLS variants) and PostgreSQL: reached only inside compose.
NEVER_OPEN = {9092, 9093, 9094, 8123, 8443, 9000, 9009, 9440, 5432}
# The collector's TLS proxy: 443, and 80 for its redirect to https and Let's Encrypt's HTTP challenge.
COLLECTOR_PORTS = {443, 80}
TEMPLATE_VALUES: dict[str, Any] = {
    "repo_url": "https://github.com/example/rtap.git",
    "repo_ref": "0123456789abcdef0123456789abcdef01234567",
    "ttl_minutes": 240,
    "compose_profiles": "producer",
    "ui_address": "127.0.0.1",
    "collector_address": "0.0.0.0",
    "collector_domain": "",
}
PREVIOUS_SETUP = TF_DIR / "previous-setup.tfvars.example"
ADOPTED_EXAMPLE = TF_DIR / "adopted.tf.example"
REQUIRED_VARS = {
    "admin_cidr": "203.0.113.7/32",
    "public_key_path": "~/.ssh/id_ed25519.pub",
    "repo_url": "https://github.com/example/rtap.git",
    "repo_ref": "main",
}

needs_terraform = pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform binary not installed")


def load(path: Path) -> dict[str, Any]:
    options = hcl2.SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)
    with path.open(encoding="utf-8") as handle:
        return hcl2.load(handle, serialization_options=options)


@pytest.fixture(scope="module")
def config() -> dict[str, list[Any]]:
    """Every top-level block of every .tf file, merged by block type."""
    merged: dict[str, list[Any]] = {}
    for path in sorted(TF_DIR.glob("*.tf")):
        for kind, blocks in load(path).items():
            merged.setdefault(kind, []).extend(blocks)
    return merged


def one(blocks: Any) -> Any:
    """The single nested block of a kind (python-hcl2 gives nested blocks as lists)."""
    assert isinstance(blocks, list), blocks
    assert len(blocks) == 1, blocks
    return blocks[0]


def resources(config: dict[str, list[Any]], kind: str, section: str = "resource") -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for block in config.get(section, []):
        found.update(block.get(kind, {}))
    return found


def variables(config: dict[str, list[Any]]) -> dict[str, dict[str, Any]]:
    return {name: body for block in config["variable"] for name, body in block.items()}


def local_value(config: dict[str, list[Any]], name: str) -> Any:
    return next(block[name] for block in config["locals"] if name in block)


def terraform(*args: str, cwd: Path, stdin: str = "", home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "TF_CLI_CONFIG_FILE": "/dev/null", "TF_IN_AUTOMATION": "1"}
    if home is not None:
        env["HOME"] = str(home)  # what pathexpand() expands ~ to
    return subprocess.run(
        ["terraform", *args], cwd=cwd, input=stdin, capture_output=True, text=True, env=env, timeout=60, check=False
    )


# --- formatting and versions -------------------------------------------------------------------------


@needs_terraform
def test_terraform_files_are_formatted() -> None:
    result = terraform("fmt", "-check", "-recursive", "-diff", "-no-color", cwd=TF_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


def test_terraform_and_provider_versions_are_pinned(config: dict[str, list[Any]]) -> None:
    (settings,) = config["terraform"]
    assert settings["required_version"] == "~> 1.11"
    providers = one(settings["required_providers"])
    assert providers["aws"] == {"source": "hashicorp/aws", "version": "~> 6.0"}
    assert providers["time"]["version"].startswith("~> ")


def test_every_resource_gets_default_tags(config: dict[str, list[Any]]) -> None:
    (aws,) = [block["aws"] for block in config["provider"]]
    assert aws["region"] == "${var.region}"
    tags = one(aws["default_tags"])["tags"]
    for tag in ("Project", "Deployment", "ManagedBy"):
        assert tag in tags


# --- network and firewall ----------------------------------------------------------------------------


def test_subnet_zone_is_checked_against_the_instance_type_offerings(config: dict[str, list[Any]]) -> None:
    offerings = resources(config, "aws_ec2_instance_type_offerings", "data")["zones_offering_type"]
    assert offerings["location_type"] == "availability-zone"
    assert one(offerings["filter"]) == {"name": "instance-type", "values": ["${var.instance_type}"]}
    subnet = resources(config, "aws_subnet")["public"]
    assert subnet["availability_zone"] == "${local.availability_zone}"
    assert subnet["map_public_ip_on_launch"] is False
    (precondition,) = one(subnet["lifecycle"])["precondition"]
    assert precondition["condition"] == "${contains(local.zones_offering_type, local.availability_zone)}"
    assert "Zones that offer it" in precondition["error_message"]


def test_public_routing(config: dict[str, list[Any]]) -> None:
    route_table = resources(config, "aws_route_table")["public"]
    assert one(route_table["route"]) == {"cidr_block": "0.0.0.0/0", "gateway_id": "${aws_internet_gateway.main.id}"}
    association = resources(config, "aws_route_table_association")["public"]
    assert association["subnet_id"] == "${aws_subnet.public.id}"


def test_ssh_is_open_to_the_admin_cidr_only(config: dict[str, list[Any]]) -> None:
    ingress = resources(config, "aws_vpc_security_group_ingress_rule")
    ssh = [rule for rule in ingress.values() if rule["from_port"] == 22 or rule["to_port"] == 22]
    assert ssh == [ingress["ssh"]]
    assert ingress["ssh"]["cidr_ipv4"] == "${var.admin_cidr}"
    assert (ingress["ssh"]["from_port"], ingress["ssh"]["to_port"], ingress["ssh"]["ip_protocol"]) == (22, 22, "tcp")


def test_web_uis_stay_on_the_hosts_loopback_unless_published(config: dict[str, list[Any]]) -> None:
    """By default the host publishes its UIs on its loopback (reached through SSH) and the security group opens
    no UI port; publish_web_uis opens the UIs with a login, over TLS only (no password crosses the internet in
    plain HTTP), to ui_cidrs, and puts their TLS ports on the host's public interface."""
    assert variables(config)["publish_web_uis"]["default"] is False
    rules = local_value(config, "ui_rules")
    assert rules.startswith("${var.publish_web_uis ? {"), rules
    assert rules.endswith(": {}}"), rules
    call = local_value(config, "user_data")
    assert 'ui_address = var.publish_web_uis ? "0.0.0.0" : "127.0.0.1"' in call
    names = {name for block in config["output"] for name in block}
    assert "tunnel_command" in names


def test_published_web_uis_are_open_to_ui_cidrs_which_default_to_the_admin_cidr(config: dict[str, list[Any]]) -> None:
    web_uis = local_value(config, "web_uis")
    assert {ui["port"] for ui in web_uis.values()} == LOGIN_UIS
    assert not LOGIN_UIS & UI_PORTS  # the TLS ports, never the plain ones
    outputs = {name: block[name] for block in config["output"] for name in block}
    assert outputs["dashboard_url"]["value"].startswith('${var.publish_web_uis ? "https://${local.site}:9443"')
    assert outputs["metabase_url"]["value"].startswith('${var.publish_web_uis ? "https://${local.site}:3443"')
    assert local_value(config, "ui_cidrs") == "${var.ui_cidrs != null ? var.ui_cidrs : [var.admin_cidr]}"
    assert variables(config)["ui_cidrs"]["default"] is None
    rule = resources(config, "aws_vpc_security_group_ingress_rule")["web_ui"]
    assert rule["for_each"] == "${local.ui_rules}"
    assert (rule["from_port"], rule["to_port"], rule["cidr_ipv4"]) == (
        "${each.value.port}",
        "${each.value.port}",
        "${each.value.cidr}",
    )
    # Opening the UIs to the world is possible (allow_wide_cidrs) but never silent: a check block warns on every
    # plan (test_the_open_world_check_sees_the_internet_in_pieces).
    assert "local.ui_cidrs" in open_world_condition(config)


def test_no_ingress_to_kafka_clickhouse_or_postgresql(config: dict[str, list[Any]]) -> None:
    literal_ports = {22} | UI_PORTS
    for name, rule in resources(config, "aws_vpc_security_group_ingress_rule").items():
        for key in ("from_port", "to_port"):
            port = rule[key]
            assert port in literal_ports or port == "${each.value.port}", f"{name}.{key} = {port}"
        assert rule.get("ip_protocol") == "tcp", f"{name} must not open every protocol"
        # The collector is the one door meant for the world (test_the_collector_alone_is_open_to_the_world).
        assert rule["cidr_ipv4"] != "0.0.0.0/0" or name == "collector", f"{name} is open to the world"
    assert not NEVER_OPEN & literal_ports
    # The security group declares no inline rules that would bypass the rule resources.
    host = resources(config, "aws_security_group")["host"]
    assert "ingress" not in host
    assert "egress" not in host


def test_the_collector_alone_is_open_to_the_world_on_its_tls_ports(config: dict[str, list[Any]]) -> None:
    """Web pages anywhere post to the collector, through TLS (a page on https:// cannot post to http://): by
    default the security group opens 443, and 80 for the redirect and Let's Encrypt, and nothing else."""
    assert variables(config)["publish_collector"]["default"] is True
    ports = local_value(config, "collector_ports")
    assert ports.startswith("${var.publish_collector ? {"), ports
    assert ports.endswith(": {}}"), ports
    assert set(re.findall(r"port = (\d+)", ports)) == {str(port) for port in COLLECTOR_PORTS}
    rule = resources(config, "aws_vpc_security_group_ingress_rule")["collector"]
    assert rule["for_each"] == "${local.collector_ports}"
    assert (rule["from_port"], rule["to_port"], rule["ip_protocol"], rule["cidr_ipv4"]) == (
        "${each.value.port}",
        "${each.value.port}",
        "tcp",
        "0.0.0.0/0",
    )
    assert not COLLECTOR_PORTS & (NEVER_OPEN | UI_PORTS)
    call = local_value(config, "user_data")
    assert 'collector_address = var.publish_collector ? "0.0.0.0" : "127.0.0.1"' in call
    assert "collector_domain  = var.collector_domain" in call or "collector_domain = var.collector_domain" in call


def test_egress_is_explicit_http_and_https_only(config: dict[str, list[Any]]) -> None:
    egress = resources(config, "aws_vpc_security_group_egress_rule")
    assert list(egress) == ["web"]
    assert {port["port"] for port in local_value(config, "egress_ports").values()} == {80, 443}
    assert egress["web"]["ip_protocol"] == "tcp"


def test_the_default_security_group_is_emptied(config: dict[str, list[Any]]) -> None:
    default = resources(config, "aws_default_security_group")["main"]
    assert "ingress" not in default
    assert "egress" not in default


# --- key pair --------------------------------------------------------------------------------------


def test_an_existing_key_pair_is_looked_up_never_imported(config: dict[str, list[Any]]) -> None:
    assert "import" not in config, "an imported key pair would be deleted by terraform destroy"
    existing = resources(config, "aws_key_pair", "data")["existing"]
    assert existing["key_name"] == "${var.existing_key_name}"
    created = resources(config, "aws_key_pair")["admin"]
    # An adopted key pair wins over a public key file (make aws-up passes one from ~/.ssh by default).
    assert created["count"] == "${var.existing_key_name == null ? 1 : 0}"
    assert "pathexpand(" in created["public_key"]


# --- the host --------------------------------------------------------------------------------------


def test_instance_hardening(config: dict[str, list[Any]]) -> None:
    host = resources(config, "aws_instance")["host"]
    metadata = one(host["metadata_options"])
    assert metadata["http_tokens"] == "required"
    assert metadata["http_put_response_hop_limit"] == 1
    root = one(host["root_block_device"])
    assert (root["volume_type"], root["encrypted"], root["volume_size"]) == ("gp3", True, "${var.root_volume_gib}")
    assert variables(config)["root_volume_gib"]["default"] >= 30
    assert host["instance_initiated_shutdown_behavior"] == "${var.ttl_action}"
    assert host["user_data"] == "${local.user_data}"
    assert host["user_data_replace_on_change"] is True


def test_ami_comes_from_canonicals_ubuntu_24_04_parameter(config: dict[str, list[Any]]) -> None:
    parameter = resources(config, "aws_ssm_parameter", "data")["ubuntu_ami"]
    expected = "/aws/service/canonical/ubuntu/server/24.04/stable/current/${local.architecture}/hvm/ebs-gp3/ami-id"
    assert parameter["name"] == expected
    assert resources(config, "aws_instance")["host"]["ami"] == "${data.aws_ssm_parameter.ubuntu_ami.insecure_value}"


def test_the_host_runs_the_simulated_producer_unless_told_not_to(config: dict[str, list[Any]]) -> None:
    assert variables(config)["simulated_producer"]["default"] is True
    call = local_value(config, "user_data")
    assert 'compose_profiles = var.simulated_producer ? "producer" : ""' in call
    compose = (ROOT / "deploy" / "compose" / "compose.yaml").read_text(encoding="utf-8")
    assert "profiles: [producer]" in compose


def test_default_instance_type_holds_the_stack(config: dict[str, list[Any]]) -> None:
    assert variables(config)["instance_type"]["default"] == "t3.large"
    assert local_value(config, "min_memory_mib") == 8192
    (precondition,) = one(resources(config, "aws_instance")["host"]["lifecycle"])["precondition"]
    assert precondition["condition"] == "${data.aws_ec2_instance_type.selected.memory_size >= local.min_memory_mib}"


def test_ttl_schedule_acts_on_the_host_from_outside(config: dict[str, list[Any]]) -> None:
    schedule = resources(config, "aws_scheduler_schedule")["ttl"]
    assert schedule["schedule_expression"].startswith("at(")
    target = one(schedule["target"])
    assert "ec2:" in target["arn"]
    assert target["input"] == "${jsonencode({InstanceIds = [aws_instance.host.id]})}"
    statement = one(resources(config, "aws_iam_policy_document", "data")["ttl_action"]["statement"])
    assert statement["resources"] == ["${aws_instance.host.arn}"], "the role may act on this instance only"


def test_outputs(config: dict[str, list[Any]]) -> None:
    names = {name for block in config["output"] for name in block}
    assert {"public_ip", "dashboard_url", "metabase_url", "collector_url", "spark_ui_url", "ssh_command"} <= names


def test_remote_state_example_uses_s3_native_locking() -> None:
    example = load(TF_DIR / "backend.tf.example")
    (backend,) = example["terraform"][0]["backend"]
    s3 = backend["s3"]
    assert s3["use_lockfile"] is True
    assert s3["encrypt"] is True
    assert not (TF_DIR / "backend.tf").exists(), "local state is the default; backend.tf is the user's choice"


# --- variable validations, evaluated by Terraform ----------------------------------------------------


@pytest.fixture(scope="module")
def variables_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with variables.tf alone: `terraform console` evaluates it without providers."""
    directory = tmp_path_factory.mktemp("tfvars")
    shutil.copy(TF_DIR / "variables.tf", directory / "variables.tf")
    return directory


def console_errors(directory: Path, **overrides: str | None) -> str:
    values = {**REQUIRED_VARS, **overrides}
    args = [arg for name, value in values.items() if value is not None for arg in ("-var", f"{name}={value}")]
    result = terraform("console", "-no-color", *args, cwd=directory, stdin="var.admin_cidr\n")
    return result.stderr


@needs_terraform
@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("admin_cidr", "0.0.0.0/0", "0.0.0.0/0 is refused"),
        ("admin_cidr", "::/0", "admin_cidr must be an IPv4 CIDR"),
        ("admin_cidr", "203.0.113.7", "admin_cidr must be an IPv4 CIDR"),
        ("admin_cidr", "203.0.113.7/24", "canonical form"),
        ("admin_cidr", "10.0.0.0/4", "prefix of /8 or longer"),
        ("admin_cidr", "198.51.100.0/23", "admin_cidr is wider than /24"),  # a configurable bound, below
        ("admin_cidr", "10.0.0.0/8", "admin_cidr is wider than /24"),
        ("ui_cidrs", '["203.0.113.0/24", "not-a-cidr"]', "ui_cidrs must be IPv4 CIDRs"),
        ("ui_cidrs", '["203.0.113.7/32", "10.0.0.0/16"]', "ui_cidrs has a network wider than /24"),
        ("ui_cidrs", '["0.0.0.0/0"]', "ui_cidrs has a network wider than /24"),
        ("ui_cidrs", '["0.0.0.0/1", "128.0.0.0/1"]', "ui_cidrs has a network wider than /24"),  # the world in two
        ("min_cidr_prefix", "4", "min_cidr_prefix must be a whole number from 8 to 32"),
        ("public_key_path", None, "Set public_key_path (a new key pair) or existing_key_name"),
        ("existing_key_name", "k" * 256, "1 to 255 printable ASCII characters"),
        ("existing_key_name", "clé", "1 to 255 printable ASCII characters"),
        ("repo_url", "https://example.com/x.git'; rm -rf /; '", "repo_url must be an https:// Git URL"),
        ("repo_url", "git@github.com:example/rtap.git", "repo_url must be an https:// Git URL"),
        ("repo_ref", "main; reboot", "repo_ref must be a branch, tag or commit"),
        ("ttl_hours", "1.5", "whole number of hours"),
        ("ttl_action", "hibernate", 'ttl_action must be "terminate" or "stop"'),
        ("collector_domain", "https://collect.shop.example", "collector_domain must be a lower-case DNS name"),
        ("collector_domain", "203.0.113.7", "collector_domain must be a lower-case DNS name"),
        ("root_volume_gib", "8", "root_volume_gib must be between 30 and 500"),
        ("availability_zone", "eu-west-1a", "must be a zone of the chosen region"),
    ],
)
def test_bad_values_are_refused_by_validation(
    variables_only: Path, variable: str, value: str | None, message: str
) -> None:
    errors = " ".join(console_errors(variables_only, **{variable: value}).split())
    assert "Invalid value for variable" in errors
    assert message in errors


@needs_terraform
@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("admin_cidr", "198.51.100.0/24"),
        ("ui_cidrs", '["203.0.113.7/32", "198.51.100.0/24"]'),
        ("availability_zone", "us-east-1b"),
        ("existing_key_name", "my-key"),  # with the public_key_path make passes by default: the name wins
        ("ttl_hours", "0"),
        ("repo_ref", "v1.2.3"),
        ("collector_domain", "collect.shop.example"),
    ],
)
def test_good_values_pass_validation(variables_only: Path, variable: str, value: str) -> None:
    assert console_errors(variables_only, **{variable: value}) == ""


@needs_terraform
@pytest.mark.parametrize(
    "overrides",
    [
        {"admin_cidr": "198.51.0.0/16", "min_cidr_prefix": "16"},  # the bound is a setting
        {"ui_cidrs": '["10.0.0.0/12"]', "min_cidr_prefix": "12"},
        {"admin_cidr": "10.0.0.0/8", "allow_wide_cidrs": "true"},  # or an explicit opt-in
        {"ui_cidrs": '["0.0.0.0/0"]', "allow_wide_cidrs": "true"},  # then the open-world check warns (below)
    ],
)
def test_wide_networks_pass_only_with_a_wider_bound_or_the_opt_in(
    variables_only: Path, overrides: dict[str, str]
) -> None:
    assert console_errors(variables_only, **overrides) == ""


def open_world_condition(config: dict[str, list[Any]]) -> str:
    (check,) = [block["web_uis_not_public"] for block in config["check"] if "web_uis_not_public" in block]
    condition: str = one(check["assert"])["condition"]
    return condition


@needs_terraform
@pytest.mark.parametrize(
    ("cidrs", "open_world"),
    [
        (["0.0.0.0/0"], True),
        (["0.0.0.0/1", "128.0.0.0/1"], True),  # the internet in two halves
        (["0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/2", "192.0.0.0/2"], True),
        (["0.0.0.0/1"], True),  # half of it is no better
        (["203.0.113.7/32", "198.51.100.0/24"], False),
        (["10.0.0.0/8"], False),
    ],
)
def test_the_open_world_check_sees_the_internet_in_pieces(
    config: dict[str, list[Any]], tmp_path: Path, cidrs: list[str], open_world: bool
) -> None:
    """With allow_wide_cidrs the validations let wide networks through; the check block still warns on every plan
    when the UIs are open to (half) the internet, however the networks are split."""
    published = 'variable "publish_web_uis" {\n  default = true\n}\n'
    (tmp_path / "main.tf").write_text(f"{published}locals {{\n  ui_cidrs = {json.dumps(cidrs)}\n}}\n")
    expression = open_world_condition(config).removeprefix("${").removesuffix("}")
    result = terraform("console", "-no-color", cwd=tmp_path, stdin=expression + "\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ("false" if open_world else "true")


# --- the previous system's set-up, and resources made by hand ----------------------------------------


@needs_terraform
def test_the_example_files_are_formatted(tmp_path: Path) -> None:
    """terraform fmt skips *.example: check each under the name it is copied to."""
    examples = sorted(TF_DIR.glob("*.example"))
    assert {path.name for path in examples} >= {PREVIOUS_SETUP.name, ADOPTED_EXAMPLE.name}
    for path in examples:
        shutil.copy(path, tmp_path / path.name.removesuffix(".example"))
    result = terraform("fmt", "-check", "-diff", "-no-color", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_previous_setup_adopts_its_key_pair_in_its_region() -> None:
    values = load(PREVIOUS_SETUP)
    assert values["region"] == "us-west-2"
    assert values["availability_zone"] == "us-west-2a"
    assert values["existing_key_name"]
    assert "public_key_path" not in values, "the key pair made by hand is adopted, not created"


@needs_terraform
def test_the_previous_setup_passes_validation(variables_only: Path) -> None:
    shutil.copy(PREVIOUS_SETUP, variables_only / "previous.tfvars")
    expression = "jsonencode([var.region, var.availability_zone, var.existing_key_name, var.public_key_path])\n"
    result = terraform("console", "-no-color", "-var-file=previous.tfvars", cwd=variables_only, stdin=expression)
    assert result.stderr == ""
    assert json.loads(json.loads(result.stdout)) == ["us-west-2", "us-west-2a", "my-key", None]


@pytest.fixture(scope="module")
def private_key_expression(tmp_path_factory: pytest.TempPathFactory, config: dict[str, list[Any]]) -> Path:
    """variables.tf and keypair.tf's ssh_private_key expression: Terraform evaluates it without providers."""
    directory = tmp_path_factory.mktemp("tfkey")
    shutil.copy(TF_DIR / "variables.tf", directory / "variables.tf")
    expression = local_value(config, "ssh_private_key").removeprefix("${").removesuffix("}")
    (directory / "key.tf").write_text(f"locals {{\n  ssh_private_key = {expression}\n}}\n", encoding="utf-8")
    return directory


@needs_terraform
@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, "{home}/.ssh/id_ed25519"),
        ({"existing_key_name": "legacy-key"}, "{home}/.ssh/legacy-key.pem"),
        ({"existing_key_name": "legacy-key", "ssh_private_key_path": "~/keys/console.pem"}, "{home}/keys/console.pem"),
        ({"ssh_private_key_path": "/etc/keys/rtap"}, "/etc/keys/rtap"),
    ],
    ids=["new key pair", "adopted: the console's .pem", "adopted, key named", "named"],
)
def test_the_private_key_aws_validate_logs_in_with(
    private_key_expression: Path, tmp_path: Path, overrides: dict[str, str], expected: str
) -> None:
    values = {**REQUIRED_VARS, **overrides}
    args = [arg for name, value in values.items() for arg in ("-var", f"{name}={value}")]
    result = terraform(
        "console", "-no-color", *args, cwd=private_key_expression, stdin="local.ssh_private_key\n", home=tmp_path
    )
    assert result.stderr == ""
    assert json.loads(result.stdout.strip()) == expected.format(home=tmp_path)


def test_the_adopted_resources_example_imports_what_it_declares(config: dict[str, list[Any]]) -> None:
    adopted = load(ADOPTED_EXAMPLE)
    imports = adopted["import"]
    assert imports, "the example shows no import block"
    declared = {f"{kind}.{name}" for block in adopted["resource"] for kind, named in block.items() for name in named}
    for block in imports:
        target = block["to"].removeprefix("${").removesuffix("}")
        assert target in declared, f"import to {target}: no such resource block"
        assert block["id"]
    # And nothing the example declares collides with the shipped configuration.
    shipped = {f"{kind}.{name}" for block in config["resource"] for kind, named in block.items() for name in named}
    assert not declared & shipped


# --- checkov --------------------------------------------------------------------------------------------


def inline_skips() -> dict[str, str]:
    """``#checkov:skip=ID:reason`` comments of the .tf files, by check id."""
    skips: dict[str, str] = {}
    for path in TF_DIR.glob("*.tf"):
        for match in re.finditer(r"#checkov:skip=(\w+):(.*)", path.read_text(encoding="utf-8")):
            skips[match[1]] = match[2].strip()
    return skips


@pytest.mark.skipif(not CHECKOV.exists(), reason="checkov not installed (make test builds .venv-tools)")
def test_checkov_finds_nothing_and_every_skip_says_why() -> None:
    result = subprocess.run(
        [str(CHECKOV), "-d", str(TF_DIR), "--framework", "terraform", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(result.stdout)
    failed = [(c["check_id"], c["resource"], c["check_name"]) for c in report["results"]["failed_checks"]]
    assert failed == []
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 0
    skips = inline_skips()
    assert all(len(reason) > 20 for reason in skips.values()), skips
    assert {c["check_id"] for c in report["results"]["skipped_checks"]} == set(skips)


# --- user_data --------------------------------------------------------------------------------------


def render_template(text: str, values: dict[str, Any]) -> str:
    """templatefile() for the subset the template uses: ${name}, and the $${ / %%{ escapes."""
    if re.search(r"(?<!%)%\{", text):
        raise AssertionError("template directives (%{...}) are not supported by this renderer")

    def substitute(match: re.Match[str]) -> str:
        if match[0] == "$${":
            return "${"
        if match[0] == "%%{":
            return "%{"
        return str(values[match["name"]])

    return re.sub(r"\$\$\{|%%\{|\$\{\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*\}", substitute, text)


@pytest.fixture(scope="module")
def rendered() -> str:
    return render_template(TEMPLATE.read_text(encoding="utf-8"), TEMPLATE_VALUES)


def test_template_variables_match_the_templatefile_call(config: dict[str, list[Any]]) -> None:
    call = local_value(config, "user_data")
    passed = set(re.findall(r"(\w+) = ", call))
    used = set(re.findall(r"(?<!\$)\$\{\s*(\w+)\s*\}", TEMPLATE.read_text(encoding="utf-8")))
    assert passed == used == set(TEMPLATE_VALUES)


@needs_terraform
def test_python_rendering_matches_terraforms_templatefile(rendered: str, tmp_path: Path) -> None:
    arguments = ", ".join(f"{name} = {json.dumps(value)}" for name, value in TEMPLATE_VALUES.items())
    expression = f'base64encode(templatefile("{TEMPLATE}", {{ {arguments} }}))\n'
    result = terraform("console", "-no-color", cwd=tmp_path, stdin=expression)
    assert result.returncode == 0, result.stderr
    assert base64.b64decode(json.loads(result.stdout.strip())).decode() == rendered


def test_rendered_user_data_fits_ec2s_limit(rendered: str) -> None:
    size = len(rendered.encode())
    assert size < USER_DATA_LIMIT, f"{size} bytes"


def test_rendered_user_data_passes_shellcheck(rendered: str, tmp_path: Path) -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed (make system-deps)")
    script = tmp_path / "user_data.sh"
    script.write_text(rendered, encoding="utf-8")
    result = subprocess.run(
        ["shellcheck", "--shell=bash", "--severity=style", str(script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


def test_user_data_pins_the_ref_and_generates_secrets_on_the_host(rendered: str) -> None:
    lines = rendered.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert f"REPO_REF='{TEMPLATE_VALUES['repo_ref']}'" in lines
    assert 'git -C "$APP_DIR" fetch -q --depth 1 origin "$REPO_REF"' in rendered
    assert "checkout -q --force FETCH_HEAD" in rendered
    assert "openssl rand -hex 24" in rendered
    assert "docker-compose-plugin" in rendered
    assert "docker compose up -d" in rendered
    # The simulated producer is a compose profile (off by default there); the host asks for it in .env.
    assert "PROFILES='producer'" in lines
    assert 'echo "COMPOSE_PROFILES=$PROFILES" >>"$COMPOSE_DIR/.env"' in rendered
    # The web UIs' address replaces the example's line (one value, not two).
    assert "UI_ADDRESS='127.0.0.1'" in lines
    assert 'echo "RTAP_UI_ADDRESS=$UI_ADDRESS"' in rendered
    # The collector: published where Terraform says, its name the domain or the host's public address (IMDSv2),
    # and the demo shop's write key allows that https origin.
    assert "COLLECTOR_ADDRESS='0.0.0.0'" in lines
    assert 'echo "RTAP_COLLECTOR_ADDRESS=$COLLECTOR_ADDRESS"' in rendered
    assert "latest/meta-data/public-ipv4" in rendered
    assert 'echo "RTAP_COLLECTOR_SITE=$COLLECTOR_SITE"' in rendered
    assert '[\\"https://$COLLECTOR_SITE\\"]' in rendered
    # The cost guard is armed before anything that can fail on the network.
    assert rendered.index("shutdown -h") < rendered.index("apt_get update")


def _secret_like(lines: list[str]) -> Iterator[str]:
    for line in lines:
        if re.search(r"(PASSWORD|SECRET)\w*=\S", line) and "openssl" not in line and "BASH_REMATCH" not in line:
            yield line


def test_no_secret_values_are_written_into_the_template(rendered: str) -> None:
    assert list(_secret_like(rendered.splitlines())) == []


def test_prometheus_and_the_metrics_endpoints_stay_closed(config: dict[str, list[Any]]) -> None:
    """Prometheus (9090, on the host's loopback) and rtap's metrics ports are reached over SSH, never opened."""
    from rtap.settings import MetricsSettings

    metrics = MetricsSettings(_env_file=None)  # type: ignore[call-arg]
    closed = {9090, metrics.port, metrics.dashboard_port, metrics.producer_port}
    opened = {ui["port"] for ui in local_value(config, "web_uis").values()} | {
        rule["from_port"] for rule in resources(config, "aws_vpc_security_group_ingress_rule").values()
    }
    assert not closed & opened


def test_the_hosts_env_file_is_made_as_make_compose_env_makes_it(rendered: str, tmp_path: Path) -> None:
    """The bootstrap's .env loop, run by bash: every secret 24 random bytes as hex, and the Spark UI's token the
    one rtap makes of its secret (what the stream job's UI then accepts from the spark-ui proxy and Prometheus)."""
    from pydantic import SecretStr

    from rtap.stream.ui import token

    start = rendered.index("  b64url() {")
    end = rendered.index('>"$COMPOSE_DIR/.env"\n', start) + len('>"$COMPOSE_DIR/.env"\n')
    example = ROOT / "deploy" / "compose" / ".env.example"
    (tmp_path / ".env.example").write_text(example.read_text())
    env = {"PATH": os.environ["PATH"], "COMPOSE_DIR": str(tmp_path), "UI_ADDRESS": "127.0.0.1"}
    env |= {"COLLECTOR_ADDRESS": "0.0.0.0", "COLLECTOR_SITE": "203.0.113.7"}
    result = subprocess.run(["bash", "-euc", rendered[start:end]], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / ".env").read_text().splitlines()
    made = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    secrets = [name for name in made if re.search("PASSWORD|SECRET", name)]
    assert secrets
    assert all(re.fullmatch(r"[0-9a-f]{48}", made[name]) for name in secrets), secrets
    assert made["SPARK_UI_TOKEN"] == token(SecretStr(made["RTAP_STREAM_UI_SECRET"]))
