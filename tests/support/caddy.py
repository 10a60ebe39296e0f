"""The compose stack's Caddyfiles run by a real Caddy on this machine (``make test`` builds it at the image's
version, :data:`CADDY`): the addresses of the compose network swapped for this test's, on loopback, with no
admin endpoint, no trust-store install and a data folder of the test's own. Caddy stops with the test, or by
itself after :data:`LIFETIME_S` if the test process dies."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.paths import REPO_ROOT, free_port

CADDY = REPO_ROOT / ".venv-tools" / "bin" / "caddy"
LIFETIME_S = 600
needs_caddy = pytest.mark.skipif(not CADDY.exists(), reason="Caddy not built (make test builds it)")


def caddy_env(data: Path) -> dict[str, str]:
    """Caddy's own state (its local CA, certificates) in ``data``, not the user's home."""
    return {**os.environ, "HOME": str(data), "XDG_DATA_HOME": str(data), "XDG_CONFIG_HOME": str(data)}


@contextmanager
def running_caddy(
    caddyfile: Path, replacements: Mapping[str, str], env: Mapping[str, str], data: Path, *, ready_port: int = 0
) -> Iterator[tuple[int, int]]:
    """``caddyfile`` with each ``replacements`` key replaced by its value, served until the block ends, once
    ``ready_port`` (by default its HTTPS port) takes connections. Yields the (http, https) ports of its automatic
    HTTPS; the caller's replacements give any other port."""
    assert CADDY.exists(), f"{CADDY} is missing: make {CADDY.relative_to(REPO_ROOT)} (make test builds it)"
    http_port, https_port = free_port(), free_port()
    text = caddyfile.read_text()
    for old, new in replacements.items():
        assert old in text, f"{old!r} is not in {caddyfile}"
        text = text.replace(old, new)
    test_options = "".join(
        f"\t{option}\n"
        for option in (
            "admin off",
            "skip_install_trust",
            "default_bind 127.0.0.1",
            f"http_port {http_port}",
            f"https_port {https_port}",
        )
    )
    text = text.replace("{\n", "{\n" + test_options, 1)  # the global options block comes first
    data.mkdir(parents=True, exist_ok=True)
    config = data / "Caddyfile"
    config.write_text(text)
    log = (data / "caddy.log").open("wb")
    process = subprocess.Popen(
        [shutil.which("timeout") or "timeout", str(LIFETIME_S), str(CADDY), "run", "--config", str(config)],
        env={**caddy_env(data), **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (data / "caddy.log").read_text(errors="replace")[-3000:]
            try:
                socket.create_connection(("127.0.0.1", ready_port or https_port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "Caddy did not start within 30 s"
                time.sleep(0.2)
        yield http_port, https_port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


def local_ca(data: Path) -> Path:
    """The root certificate of the local CA Caddy made in ``data`` (what a browser would have to trust)."""
    return data / "caddy" / "pki" / "authorities" / "local" / "root.crt"
