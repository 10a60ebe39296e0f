"""Which class-data sharing options each JVM gets (rtap.runtime.jvm); the archives: tests/integration/runtime/stack."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
from pydantic import ValidationError

from rtap.runtime.jvm import ArchiveName, archive_path, class_sharing_options, pending_path
from rtap.settings import Settings


def _settings(tmp_path: Path, mode: Literal["on", "off", "dump"] = "on") -> Settings:
    return Settings(data_dir=tmp_path / "data", jars_dir=tmp_path / "jars", jvm_class_sharing=mode)


def _install_archive(settings: Settings, name: ArchiveName) -> Path:
    path = archive_path(settings, name)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"archive")
    return path


def test_an_installed_archive_is_mapped(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    archive = _install_archive(settings, "kafka")
    assert class_sharing_options(settings, "kafka") == [f"-XX:SharedArchiveFile={archive}"]
    assert class_sharing_options(settings, "spark") == []  # each JVM has its own archive


def test_without_an_archive_the_jvm_starts_as_usual(tmp_path: Path) -> None:
    assert class_sharing_options(_settings(tmp_path), "spark") == []


def test_off_ignores_an_installed_archive(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "off")
    _install_archive(settings, "spark")
    assert class_sharing_options(settings, "spark") == []


def test_dump_writes_beside_the_installed_archive_never_over_it(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "dump")
    _install_archive(settings, "spark")
    options = class_sharing_options(settings, "spark")
    assert options[0] == f"-XX:ArchiveClassesAtExit={pending_path(settings, 'spark')}"
    assert pending_path(settings, "spark") != archive_path(settings, "spark")
    assert not any(option.startswith("-XX:SharedArchiveFile") for option in options)  # dumps on the JDK's base
    assert "-Xlog:cds=off" in options  # thousands of "cannot archive" warnings otherwise


def test_the_mode_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTAP_JVM_CLASS_SHARING", "off")
    assert Settings().jvm_class_sharing == "off"
    monkeypatch.setenv("RTAP_JVM_CLASS_SHARING", "maybe")
    with pytest.raises(ValidationError, match="jvm_class_sharing"):
        Settings()
