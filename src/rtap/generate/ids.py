"""Reproducible random ids: version 4 UUIDs drawn from seeded numpy generators and formatted in bulk.

``uuid.uuid4()`` cannot be replayed, and formatting one id at a time in Python costs more than the
generator's whole budget per record (about two microseconds, see :mod:`rtap.generate.generator`). So an
id stream draws :data:`ID_CHUNK` ids' bytes at once and numpy lays out their hex digits, dashes and any
fixed bytes around them (the event id stream wraps each id in the start of its JSON record) in C.
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt

# Ids formatted at once: numpy's cost per call is paid once per chunk, not once per id.
ID_CHUNK = 4096
# A UUID's hex digits come in groups of 8-4-4-4-12, separated by dashes.
_UUID_GROUPS = (8, 4, 4, 4, 12)
_HEX_GROUPS = np.dtype([(f"group{group}", f"S{digits}") for group, digits in enumerate(_UUID_GROUPS)])


def numpy_rng(label: str) -> np.random.Generator:
    """A numpy generator seeded from a text label (any seed, negative ones included, gives valid entropy)."""
    return np.random.default_rng(int.from_bytes(hashlib.sha256(label.encode()).digest(), "big"))


class UuidStream:
    """Random ids in the version 4 UUID layout from a seeded numpy generator, each wrapped in fixed bytes.

    Formatted :data:`ID_CHUNK` at a time: the hex digits of all ids in one ``bytes.hex()``, then the digit
    groups, dashes and the fixed bytes copied as fixed-width fields of a structured array, which numpy
    turns into a list of bytes in C.
    """

    def __init__(self, rng: np.random.Generator, prefix: bytes = b"", suffix: bytes = b"") -> None:
        self._rng = rng
        self._prefix = prefix
        self._suffix = suffix
        fields: list[tuple[str, str]] = [("prefix", f"S{len(prefix)}")] if prefix else []
        for group, digits in enumerate(_UUID_GROUPS):
            if group:
                fields.append((f"dash{group}", "S1"))
            fields.append((f"group{group}", f"S{digits}"))
        if suffix:
            fields.append(("suffix", f"S{len(suffix)}"))
        self._layout = np.dtype(fields)
        self._buffer: list[bytes] = []
        self._position = 0

    def take(self, count: int) -> list[bytes]:
        """The next ``count`` ids."""
        while len(self._buffer) - self._position < count:
            self._buffer = self._buffer[self._position :] + self._chunk()
            self._position = 0
        taken = self._buffer[self._position : self._position + count]
        self._position += count
        return taken

    def next(self) -> bytes:
        return self.take(1)[0]

    def _chunk(self) -> list[bytes]:
        ids: list[bytes] = self.chunk_array().tolist()
        return ids

    def chunk_array(self) -> npt.NDArray[np.bytes_]:
        """The next :data:`ID_CHUNK` ids as a numpy array of fixed-width bytes (``take`` does not see them)."""
        raw = self._rng.integers(0, 256, size=(ID_CHUNK, 16), dtype=np.uint8)
        raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
        raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
        hexed = np.frombuffer(raw.tobytes().hex().encode(), dtype=_HEX_GROUPS)
        text = np.empty(ID_CHUNK, dtype=self._layout)
        if self._prefix:
            text["prefix"] = self._prefix
        for group in range(len(_UUID_GROUPS)):
            if group:
                text[f"dash{group}"] = b"-"
            text[f"group{group}"] = hexed[f"group{group}"]
        if self._suffix:
            text["suffix"] = self._suffix
        # "S" drops trailing NUL bytes, and there are none.
        return text.view(f"S{self._layout.itemsize}")
