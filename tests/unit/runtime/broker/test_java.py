"""Finding Java 17+: version banners and the errors a user sees without it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from rtap.errors import DependencyError
from rtap.runtime.broker.java import find_java, parse_java_major


@pytest.mark.parametrize(
    ("banner", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment', 17),
        ('java version "1.8.0_392"\nJava(TM) SE Runtime Environment', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ('openjdk version "11.0.2-internal" 2019-01-15', 11),
        ("no version here", None),
    ],
)
def test_parse_java_major(banner: str, major: int | None) -> None:
    assert parse_java_major(banner) == major


def test_missing_java_is_a_dependency_error() -> None:
    with pytest.raises(DependencyError, match=r"Java 17\+ is required"):
        find_java("rtap-no-such-java-binary")


def _fake_java(tmp_path: Path, banner: str) -> str:
    script = tmp_path / "java"
    script.write_text(f"#!/bin/sh\necho '{banner}' >&2\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_old_java_is_refused_with_its_version(tmp_path: Path) -> None:
    java = _fake_java(tmp_path, 'openjdk version "11.0.20" 2023-07-18')

    with pytest.raises(DependencyError, match=r"needs Java 17\+, but .* is Java 11"):
        find_java(java)


def test_java_17_is_accepted(tmp_path: Path) -> None:
    java = _fake_java(tmp_path, 'openjdk version "17.0.15" 2025-04-15')

    assert find_java(java) == java
