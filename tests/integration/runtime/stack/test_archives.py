"""The class-data sharing archives `make install` wrote (``rtap jvm archive``) fit the JVMs rtap starts.

Each JVM here runs with ``-Xshare:on`` (through JAVA_TOOL_OPTIONS, which every JVM reads): a JVM that cannot
map its archive then refuses to start instead of falling back to loading every class from the jars. So a
passing test means the archive matched this Java and this class path, not only that the option was passed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rtap.runtime.broker import LocalKafka
from rtap.runtime.jvm import ARCHIVES, archive_path
from rtap.settings import child_environment
from tests.support.pipeline import local_broker_settings

STRICT_SHARING = "-Xshare:on"


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def test_make_install_wrote_both_archives(tmp_path: Path) -> None:
    settings = local_broker_settings(tmp_path)
    for name in ARCHIVES:
        assert archive_path(settings, name).stat().st_size > 10 * 2**20, f"run `make install` ({name})"


def test_the_broker_maps_its_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_TOOL_OPTIONS", STRICT_SHARING)
    settings = local_broker_settings(tmp_path)
    with LocalKafka(settings) as broker:  # the storage format JVM and the broker both start with it
        pid = broker.pid()
        assert pid is not None
        assert f"-XX:SharedArchiveFile={archive_path(settings, 'kafka')}" in _cmdline(pid)


def test_the_spark_driver_maps_its_archive(tmp_path: Path) -> None:
    # Its own process: this one may already hold a Spark JVM (the transform tests'), and PySpark reuses it.
    settings = local_broker_settings(tmp_path)
    script = textwrap.dedent(
        """
        from rtap.settings import Settings
        from rtap.stream.spark import build_session, shutdown_jvm

        session = build_session(Settings())
        runtime = session._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
        print("\\n".join(runtime.getInputArguments()))
        print("rows", session.range(10).count())
        shutdown_jvm(session)
        """
    )
    env = {**child_environment(settings), "JAVA_TOOL_OPTIONS": STRICT_SHARING}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    arguments = result.stdout.splitlines()
    assert f"-XX:SharedArchiveFile={archive_path(settings, 'spark')}" in arguments
    assert STRICT_SHARING in arguments
    assert "rows 10" in arguments
