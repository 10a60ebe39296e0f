"""Class-data sharing (AppCDS) archives for rtap's two JVMs: the Kafka broker and Spark's driver.

Each of them loads thousands of classes from jars at every start, parsing and verifying each one; on a
2-core machine that is most of a JVM's start-up CPU, and ``rtap up`` starts both at once. A dynamic CDS
archive (``-XX:ArchiveClassesAtExit``, JDK 13+) keeps those classes parsed and verified in a file that a
later JVM maps with ``-XX:SharedArchiveFile``. Measured on the 2-core machine: the broker's start 4.6 -> 2.8 s,
a Spark session 6.3 -> 3.7 s, first rows after ``rtap up`` 21.3 -> 15.1 s (bench/results/startup.md).

``make install`` writes the archives by running the pipeline once, briefly (``rtap jvm archive``,
``rtap.runtime.stack.archives``). The JVM checks an archive against its own build and class path, and ignores one
that no longer matches (one warning line, then a normal start): a stale archive costs speed, never
correctness. ``RTAP_JVM_CLASS_SHARING=off`` starts the JVMs without archives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from rtap.settings import Settings

ArchiveName = Literal["kafka", "spark"]
ARCHIVES: tuple[ArchiveName, ...] = ("kafka", "spark")
# While dumping, the JVM reports every class it cannot archive (signed jars, old class file versions) as a
# warning: thousands of lines that say nothing about rtap.
_QUIET_DUMP = ("-Xlog:cds=off", "-Xlog:cds+dynamic=off")


def archive_dir(settings: Settings) -> Path:
    """Next to the jars they were built from: both belong to one installation, not to a data directory."""
    return settings.jars_dir / "cds"


def archive_path(settings: Settings, name: ArchiveName) -> Path:
    return archive_dir(settings) / f"{name}.jsa"


def pending_path(settings: Settings, name: ArchiveName) -> Path:
    """Where a dumping JVM writes; renamed over :func:`archive_path` once the JVM exited.

    Never written in place: JVMs running meanwhile have the current archive mapped into memory.
    """
    return archive_dir(settings) / f"{name}.jsa.new"


def class_sharing_options(settings: Settings, name: ArchiveName) -> list[str]:
    """The JVM options of ``settings.jvm_class_sharing`` for the ``name`` JVM.

    ``on``: map the archive if it exists (none yet: a normal start). ``dump``: write one at exit.
    """
    mode = settings.jvm_class_sharing
    if mode == "dump":
        return [f"-XX:ArchiveClassesAtExit={pending_path(settings, name)}", *_QUIET_DUMP]
    archive = archive_path(settings, name)
    if mode == "on" and archive.is_file():
        return [f"-XX:SharedArchiveFile={archive}"]
    return []
