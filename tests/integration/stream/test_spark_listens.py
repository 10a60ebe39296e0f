"""Where a real driver JVM listens: its RPC and block-manager ports (no authentication) on 127.0.0.1 alone, the
Spark UI on RTAP_STREAM_UI_HOST. The UI host here is 127.0.0.2, another loopback address, so the test binds nothing
beyond loopback and still tells the two apart."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.paths import free_port

SESSION = """
import subprocess, sys
from rtap.settings import Settings, StreamSettings
from rtap.stream.spark import build_session
settings = Settings()
spark = build_session(settings.model_copy(update={"stream": StreamSettings(ui_host="127.0.0.2", master="local[1]")}))
pid = spark.sparkContext._gateway.proc.pid
listening = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
print("\\n".join("LISTEN " + line.split()[3] for line in listening.splitlines() if f"pid={pid}," in line))
spark.stop()
"""


def test_the_driver_listens_on_loopback_and_only_the_ui_on_its_host(tmp_path: Path) -> None:
    ui_port = free_port()
    (tmp_path / "spark-defaults.conf").write_text(f"spark.ui.port {ui_port}\n")
    env = {**os.environ, "SPARK_CONF_DIR": str(tmp_path), "RTAP_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run(
        [sys.executable, "-c", SESSION], env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    listening = set()
    for line in result.stdout.splitlines():
        if not line.startswith("LISTEN "):
            continue
        address, port = line.removeprefix("LISTEN ").rsplit(":", 1)  # e.g. [::ffff:127.0.0.1]:41353
        listening.add((address.removeprefix("[").removesuffix("]").removeprefix("::ffff:"), int(port)))
    assert ("127.0.0.2", ui_port) in listening
    assert {address for address, port in listening if port != ui_port} == {"127.0.0.1"}, listening
