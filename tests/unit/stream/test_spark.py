"""The stream job's JVM options (no JVM started here)."""

from __future__ import annotations

import shlex
from pathlib import Path

from rtap.jvm import archive_path
from rtap.settings import Settings
from rtap.stream.spark import COMPILE_HUGE_METHODS, driver_java_options


def test_the_driver_maps_the_spark_archive_and_compiles_huge_methods(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", jars_dir=tmp_path / "jars with space")
    assert driver_java_options(settings) == [COMPILE_HUGE_METHODS]

    archive = archive_path(settings, "spark")
    archive.parent.mkdir(parents=True)
    archive.touch()
    options = driver_java_options(settings)
    assert options == [COMPILE_HUGE_METHODS, f"-XX:SharedArchiveFile={archive}"]
    # Spark splits extraJavaOptions like a shell: a path with a space survives shlex quoting.
    assert shlex.split(shlex.join(options)) == options
