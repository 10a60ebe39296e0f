"""Find a Java runtime the broker can run on (Kafka 4 brokers need Java 17 or newer)."""

from __future__ import annotations

import re
import shutil
import subprocess

from rtap.errors import DependencyError

MIN_JAVA = 17
_INSTALL_HINT = "install one, e.g. `apt-get install openjdk-17-jre-headless`"
# `java -version` prints e.g. `openjdk version "17.0.15" 2025-04-15` or, before Java 9, `"1.8.0_392"`.
_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?[^"]*"')


def parse_java_major(version_output: str) -> int | None:
    """The feature release of a ``java -version`` banner (8 for "1.8.0_x", 17 for "17.0.15"), or None."""
    match = _VERSION.search(version_output)
    if match is None:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:
        return int(match.group(2))
    return major


def find_java(executable: str = "java") -> str:
    """The path of a ``java`` on PATH that is at least Java 17; DependencyError otherwise."""
    java = shutil.which(executable)
    if java is None:
        raise DependencyError(
            f"Java {MIN_JAVA}+ is required to run the local Kafka broker and was not found; {_INSTALL_HINT}"
        )
    try:
        banner = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False).stderr
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DependencyError(f"{java} -version failed: {exc}") from exc
    major = parse_java_major(banner)
    if major is None:
        raise DependencyError(f"cannot tell the version of {java} from {banner.strip()[:80]!r}")
    if major < MIN_JAVA:
        raise DependencyError(
            f"the local Kafka broker needs Java {MIN_JAVA}+, but {java} is Java {major}; {_INSTALL_HINT}"
        )
    return java
