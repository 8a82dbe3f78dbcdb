"""Read a GGUF file's header and metadata without llama.cpp.

Why not llama.cpp: we want to know a file is a GGUF, and its trained context, before
asking llama.cpp to load gigabytes (it prints its own errors, then raises a terse
ValueError), and `hermes info` wants the metadata without creating a context. Only the
header is read: tensors stay on disk, so this costs milliseconds for an 8B model.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from hermes_cli.errors import ModelError

GGUF_MAGIC = b"GGUF"

# GGUF value types (gguf spec): id -> struct format for scalars.
_SCALARS: dict[int, str] = {
    0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
    10: "<Q", 11: "<q", 12: "<d",
}
_STRING, _ARRAY = 8, 9
# Arrays longer than this (the 128k-token vocabulary) are skipped, not decoded: only
# their length is kept, which is all that `info` shows.
_MAX_ARRAY_DECODE = 64


class _Reader:
    def __init__(self, fh: BinaryIO, path: Path) -> None:
        self.fh, self.path = fh, path

    def read(self, n: int) -> bytes:
        data = self.fh.read(n)
        if len(data) != n:
            raise ModelError(f"{self.path} is truncated: its GGUF header ends early")
        return data

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        return self.read(self.unpack("<Q")).decode("utf-8", errors="replace")

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            item_type, count = self.unpack("<I"), self.unpack("<Q")
            if count > _MAX_ARRAY_DECODE:
                self._skip_array(item_type, count)
                return ArrayInfo(count)
            return [self.value(item_type) for _ in range(count)]
        raise ModelError(f"{self.path} is corrupt: unknown GGUF value type {vtype}")

    def _skip_array(self, item_type: int, count: int) -> None:
        if item_type in _SCALARS:
            self.fh.seek(struct.calcsize(_SCALARS[item_type]) * count, 1)
            return
        skip: Callable[[], object] = (
            (lambda: self.fh.seek(self.unpack("<Q"), 1)) if item_type == _STRING
            else (lambda: self.value(item_type))
        )
        for _ in range(count):
            skip()


class ArrayInfo(int):
    """Stands in for a long array (a vocabulary): its length."""


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The key/value metadata of a GGUF file.

    Raises:
        ModelError: the file is missing, is not a GGUF, or its header is cut short.
    """
    path = Path(path)
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        raise ModelError(f"model file not found: {path}") from None
    except IsADirectoryError:
        raise ModelError(f"{path} is a directory, not a GGUF file") from None
    except OSError as e:
        raise ModelError(f"cannot read {path}: {e.strerror}") from None
    with fh:
        reader = _Reader(fh, path)
        if fh.read(4) != GGUF_MAGIC:
            raise ModelError(f"{path} is not a GGUF file (wrong magic bytes)")
        version = reader.unpack("<I")
        if version not in (2, 3):
            raise ModelError(f"{path} has GGUF version {version}; llama.cpp reads 2 and 3")
        reader.unpack("<Q")  # tensor count
        n_kv = reader.unpack("<Q")
        meta: dict[str, Any] = {"GGUF.version": version}
        for _ in range(n_kv):
            key = reader.string()
            meta[key] = reader.value(reader.unpack("<I"))
    return meta


def trained_context(meta: dict[str, Any]) -> int | None:
    """The context length the model was trained with, if the file declares it."""
    arch = meta.get("general.architecture")
    value = meta.get(f"{arch}.context_length")
    return int(value) if isinstance(value, int) else None
