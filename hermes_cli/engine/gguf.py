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

import hashlib
import marshal
import mmap
import os
import struct
import sys
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hermes_cli.errors import ModelError

GGUF_MAGIC = b"GGUF"

# GGUF value types (gguf spec): id -> struct format for scalars.
_SCALARS: dict[int, str] = {
    0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
    10: "<Q", 11: "<q", 12: "<d",
}
_ARRAY_CODES = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
_U64 = struct.Struct("<Q")
_MAX_KEYS = 1 << 20
# Short arrays are decoded to lists; long numeric arrays (token types) to a compact
# array; long string arrays (the 128k-token vocabulary) are skipped: their length is kept.
_MAX_LIST_DECODE = 64


class ArrayInfo(int):
    """Stands in for a long array of strings (a vocabulary): its length."""


class _Reader:
    """Reads the header from the file's bytes (mapped, not copied) at a moving offset:
    a 128k-token vocabulary is a walk over 128k length fields, not 128k file reads."""

    def __init__(self, data: Any, path: Path) -> None:
        self.data, self.path, self.size, self.pos = data, path, len(data), 0

    def corrupt(self, what: str) -> ModelError:
        return ModelError(f"{self.path} is corrupt: {what}", hint="download it again")

    def left(self) -> int:
        return self.size - self.pos

    def read(self, n: int) -> bytes:
        if n > self.size - self.pos:
            raise ModelError(f"{self.path} is truncated: its GGUF header ends early",
                             hint="download it again")
        out = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return out

    def unpack(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if size > self.size - self.pos:
            raise ModelError(f"{self.path} is truncated: its GGUF header ends early",
                             hint="download it again")
        value = struct.unpack_from(fmt, self.data, self.pos)[0]
        self.pos += size
        return value

    def string(self) -> str:
        n = self.unpack("<Q")
        if n > self.left():
            raise self.corrupt(f"a string of {n} bytes where {self.left()} are left")
        return self.read(n).decode("utf-8", errors="replace")

    def skip_strings(self, count: int) -> None:
        data, pos, size, unpack = self.data, self.pos, self.size, _U64.unpack_from
        for _ in range(count):
            if pos + 8 > size:
                raise ModelError(f"{self.path} is truncated: its GGUF header ends early",
                                 hint="download it again")
            n = unpack(data, pos)[0]
            pos += 8 + n
            if pos > size:
                raise self.corrupt(f"a string of {n} bytes runs past the end of the file")
        self.pos = pos

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
                self.skip_strings(count)
                return ArrayInfo(count)
            return [self.value(item_type, depth + 1) for _ in range(count)]
        raise self.corrupt(f"unknown GGUF value type {vtype}")


@dataclass(frozen=True)
class Tensor:
    name: str
    nbytes: int  # on disk (what loading it costs), alignment padding included


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The key/value metadata of a GGUF file. Kept in the cache directory per file
    (path, size, mtime): walking a 128k-token vocabulary's strings costs ~0.1 s, which
    a one-shot `hermes ask` pays every time otherwise.

    Raises:
        ModelError: the file is missing, is not a GGUF, or its header is cut short or corrupt.
    """
    path = Path(path)
    cache = _header_cache(path)
    if cache is not None:
        try:
            fmt, meta = marshal.loads(cache.read_bytes())
            if fmt == _CACHE_FORMAT:
                return {k: _thaw(v) for k, v in meta.items()}
        except (OSError, ValueError, EOFError, TypeError):
            pass
    meta = _read(path, tensors=False)[0]
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
            tmp.write_bytes(marshal.dumps((_CACHE_FORMAT, {k: _freeze(v) for k, v in meta.items()})))
            os.replace(tmp, cache)
        except (OSError, ValueError):
            pass  # a cache we cannot write only costs time
    return meta


_CACHE_FORMAT = 1


def _header_cache(path: Path) -> Path | None:
    from hermes_cli import env, fileid

    key = fileid.key(path)
    if key is None:
        return None
    return env.cache_dir() / "gguf" / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".meta")


def _freeze(value: Any) -> Any:
    if isinstance(value, array):
        return ("\x00array", value.typecode, value.tobytes())
    if isinstance(value, ArrayInfo):
        return ("\x00count", int(value))
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple) and value and value[0] == "\x00array":
        out = array(value[1])
        out.frombytes(value[2])
        return out
    if isinstance(value, tuple) and value and value[0] == "\x00count":
        return ArrayInfo(value[1])
    return value


def read_tensors(path: str | Path) -> list[Tensor]:
    """Every tensor of a GGUF file (of this part, for a split model) with its size, from
    the header alone: sizes are the distances between data offsets."""
    return _read(Path(path), tensors=True)[1]


def _read(path: Path, *, tensors: bool) -> tuple[dict[str, Any], list[Tensor]]:
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        raise ModelError(f"model file not found: {path}") from None
    except IsADirectoryError:
        raise ModelError(f"{path} is a directory, not a GGUF file") from None
    except OSError as e:
        raise ModelError(f"cannot read {path}: {e.strerror}") from None
    with fh:
        size = os.fstat(fh.fileno()).st_size
        if size < 4 or fh.read(4) != GGUF_MAGIC:
            raise ModelError(f"{path} is not a GGUF file (wrong magic bytes)")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _parse(_Reader(memoryview(data), path), tensors)


def _parse(reader: _Reader, tensors: bool) -> tuple[dict[str, Any], list[Tensor]]:
    path = reader.path
    reader.pos = 4
    try:
        version = reader.unpack("<I")
        if version not in (2, 3):
            raise ModelError(f"{path} has GGUF version {version}; llama.cpp reads 2 and 3")
        n_tensors = reader.unpack("<Q")
        n_kv = reader.unpack("<Q")
        if n_kv > _MAX_KEYS or n_tensors > _MAX_KEYS:
            raise reader.corrupt(f"it claims {n_kv} metadata keys and {n_tensors} tensors")
        meta: dict[str, Any] = {"GGUF.version": version}
        for _ in range(n_kv):
            key = reader.string()
            meta[key] = reader.value(reader.unpack("<I"))
        if not tensors:
            return meta, []
        infos: list[tuple[str, int]] = []
        for _ in range(n_tensors):
            name = reader.string()
            n_dims = reader.unpack("<I")
            if n_dims > 8:
                raise reader.corrupt(f"tensor {name} has {n_dims} dimensions")
            reader.read(8 * n_dims + 4)  # shape and type: the offsets give the sizes
            infos.append((name, reader.unpack("<Q")))
        align = meta.get("general.alignment", 32)
        align = align if isinstance(align, int) and align > 0 else 32
        data_start = -(-reader.pos // align) * align
        data_size = reader.size - data_start
        ordered = sorted(infos, key=lambda item: item[1])
        ends = [offset for _n, offset in ordered[1:]] + [data_size]
        sizes = {name: max(0, end - offset) for (name, offset), end in zip(ordered, ends)}
        return meta, [Tensor(name, sizes[name]) for name, _ in infos]
    finally:
        reader.data.release()


# Hyperparameters llama.cpp divides by or allocates per, and their sane range: outside
# it llama.cpp aborts (block_count 0 is SIGABRT with nothing printed) instead of refusing.
_SHAPE = {"block_count": (1, 10_000), "embedding_length": (1, 1 << 20),
          "attention.head_count": (1, 1 << 16), "feed_forward_length": (1, 1 << 22)}


def check_shape(meta: dict[str, Any], path: Path) -> None:
    """Raise ModelError (exit 3) for a header whose model shape llama.cpp would crash on."""
    arch = meta.get("general.architecture")
    for key, (low, high) in _SHAPE.items():
        value = meta.get(f"{arch}.{key}")
        if isinstance(value, int) and not isinstance(value, bool) and not low <= value <= high:
            raise ModelError(f"{path} is not a usable model: {arch}.{key} is {value} "
                             f"(a model needs {low} to {high:,})")


def trained_context(meta: dict[str, Any]) -> int | None:
    """The context length the model was trained with, if the file declares it."""
    arch = meta.get("general.architecture")
    value = meta.get(f"{arch}.context_length")
    return int(value) if isinstance(value, int) else None
