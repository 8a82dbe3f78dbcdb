"""Read a GGUF file's header and metadata without llama.cpp.

Why not llama.cpp: we want to know a file is a GGUF, and its trained context, before
asking llama.cpp to load gigabytes (it prints its own errors, then raises a terse error),
and `hermes info` wants the metadata without creating a context. Only the header is read:
tensors stay on disk, so this costs milliseconds for an 8B model.

Every length in the header is checked against what is left of the file before anything
is allocated, so a corrupt or truncated header is a ModelError naming the file, never a
MemoryError or a hang.
"""

from __future__ import annotations

import os
import struct
import sys
from array import array
from pathlib import Path
from typing import Any, BinaryIO

from hermes_cli.errors import ModelError

GGUF_MAGIC = b"GGUF"

# GGUF value types (gguf spec): id -> struct format for scalars.
_SCALARS: dict[int, str] = {
    0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
    10: "<Q", 11: "<q", 12: "<d",
}
_ARRAY_CODES = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
_MAX_KEYS = 1 << 20
# Short arrays are decoded to lists; long numeric arrays (token types) to a compact
# array; long string arrays (the 128k-token vocabulary) are skipped: their length is kept.
_MAX_LIST_DECODE = 64


class ArrayInfo(int):
    """Stands in for a long array of strings (a vocabulary): its length."""


class _Reader:
    def __init__(self, fh: BinaryIO, path: Path, size: int) -> None:
        self.fh, self.path, self.size = fh, path, size

    def corrupt(self, what: str) -> ModelError:
        return ModelError(f"{self.path} is corrupt: {what}", hint="download it again")

    def left(self) -> int:
        return self.size - self.fh.tell()

    def read(self, n: int) -> bytes:
        if n > self.left():
            raise ModelError(f"{self.path} is truncated: its GGUF header ends early",
                             hint="download it again")
        return self.fh.read(n)

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        n = self.unpack("<Q")
        if n > self.left():
            raise self.corrupt(f"a string of {n} bytes where {self.left()} are left")
        return self.read(n).decode("utf-8", errors="replace")

    def value(self, vtype: int, depth: int = 0) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY and depth < 4:
            item_type, count = self.unpack("<I"), self.unpack("<Q")
            item_size = struct.calcsize(_SCALARS[item_type]) if item_type in _SCALARS else 8
            if count * item_size > self.left():
                raise self.corrupt(f"an array of {count} items where {self.left()} bytes are left")
            if count <= _MAX_LIST_DECODE:
                return [self.value(item_type, depth + 1) for _ in range(count)]
            if item_type in _ARRAY_CODES:
                values = array(_ARRAY_CODES[item_type])
                values.frombytes(self.read(item_size * count))
                if sys.byteorder != "little":
                    values.byteswap()
                return values
            if item_type == _STRING:
                for _ in range(count):
                    n = self.unpack("<Q")
                    if n > self.left():
                        raise self.corrupt(f"a string of {n} bytes where {self.left()} are left")
                    self.fh.seek(n, os.SEEK_CUR)
                return ArrayInfo(count)
            return [self.value(item_type, depth + 1) for _ in range(count)]
        raise self.corrupt(f"unknown GGUF value type {vtype}")


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The key/value metadata of a GGUF file.

    Raises:
        ModelError: the file is missing, is not a GGUF, or its header is cut short or corrupt.
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
        reader = _Reader(fh, path, os.fstat(fh.fileno()).st_size)
        if fh.read(4) != GGUF_MAGIC:
            raise ModelError(f"{path} is not a GGUF file (wrong magic bytes)")
        version = reader.unpack("<I")
        if version not in (2, 3):
            raise ModelError(f"{path} has GGUF version {version}; llama.cpp reads 2 and 3")
        reader.unpack("<Q")  # tensor count
        n_kv = reader.unpack("<Q")
        if n_kv > _MAX_KEYS:
            raise reader.corrupt(f"it claims {n_kv} metadata keys")
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
