"""Prompt prefixes kept on disk: the KV state of a system prompt, loaded by the next
process whose prompt starts with the same tokens.

A one-shot `hermes ask --schema` (or `--tools`, or a long `--system`) sends the same
system prompt from every process: the Hermes format quotes the whole schema there (about
170 tokens for 8 properties), and evaluating it was most of what a JSON answer waited
for beyond a free one. llama.cpp writes the KV cells of the tokens held
(llama_state_save_file: about 23 KB a token for SmolLM2-135M, 128 KB for an 8B); loading
them takes milliseconds.

Trust: a file is named by a digest of what it is for (the model file's identity, the
context's shape, llama-cpp-python's version, the token ids) and by a digest of its own
bytes, checked before llama.cpp reads it, so a truncated, corrupt or foreign file is
never loaded (it is deleted); and it is used only when the ids it holds are exactly the
prompt's prefix, ids we produced for this vocabulary. Writes go to a temporary name and
are renamed whole, so a kill leaves no half file under a real name and two processes
writing the same prefix both end with a whole one. The newest files up to BUDGET bytes
are kept; failures (a full disk, a read-only cache) only cost the evaluation.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hermes_cli import fileid

MIN_TOKENS = 32  # shorter prefixes evaluate in less time than a file takes to find
BUDGET = 256 << 20  # bytes of kept states, all models together
_FORMAT = 2  # 2: the model is known by fileid (inode, ctime)
_STALE_TMP = 600.0  # seconds after which a temporary file is a killed writer's


class StateEngine(Protocol):
    """What the cache needs of engine/model.py's Engine (named, not imported back)."""

    info: Any

    @property
    def n_ctx(self) -> int: ...

    n_seq_max: int

    def save_state(self, path: Path) -> int: ...

    def load_state(self, path: Path) -> int: ...

    def cached_tokens(self) -> list[int]: ...

    def forget(self) -> None: ...


class PromptCache:
    """Kept KV states of prompt prefixes, in one directory."""

    def __init__(self, directory: Path, budget: int = BUDGET) -> None:
        self.directory = directory
        self.budget = budget

    def restore(self, engine: StateEngine, prefix: Sequence[int]) -> int:
        """Load the state kept for `prefix`: the tokens the engine then holds (0: none
        kept, or none usable; the engine is then empty)."""
        key = _key(engine, prefix)
        try:
            found = sorted(self.directory.glob(f"{key}-*.kv"))
        except OSError:
            return 0
        for path in found:
            if _digest(path) != path.stem.rpartition("-")[2]:
                _discard(path)  # corrupt or half-written by hand: never loaded
                continue
            n = engine.load_state(path)
            if n == len(prefix) and engine.cached_tokens() == list(prefix):
                _touch(path)
                return n
            engine.forget()
            _discard(path)
        return 0

    def store(self, engine: StateEngine, prefix: Sequence[int]) -> bool:
        """Keep the engine's state, which holds exactly `prefix`; whether it was kept."""
        if engine.cached_tokens() != list(prefix):
            return False
        key = _key(engine, prefix)
        tmp = self.directory / f".{key}.{os.getpid()}.tmp"
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            engine.save_state(tmp)
            os.chmod(tmp, 0o600)  # the ids of a system prompt: the user's alone
            size = tmp.stat().st_size
            if size > self.budget // 2:
                _discard(tmp)
                return False
            os.replace(tmp, self.directory / f"{key}-{_digest(tmp)}.kv")
        except OSError:
            _discard(tmp)
            return False
        self._trim()
        return True

    def _trim(self) -> None:
        """Keep the newest states within the budget; remove killed writers' leftovers."""
        now = time.time()
        try:
            entries = [(p, p.stat()) for p in self.directory.iterdir()]
        except OSError:
            return
        used = 0
        for path, st in sorted(entries, key=lambda e: e[1].st_mtime, reverse=True):
            if path.name.startswith("."):
                if path.suffix == ".tmp" and now - st.st_mtime > _STALE_TMP:
                    _discard(path)
                continue
            used += st.st_size
            if used > self.budget:
                _discard(path)


@dataclass(frozen=True)
class KeptPrefix:
    """A generation's prompt prefix to load from `cache`, or to evaluate alone and keep
    there (the caller knows where the stable part of its prompt ends: engine/generation.py
    only sees ids)."""

    cache: PromptCache
    length: int


def state_shape(engine: StateEngine) -> list[Any]:
    """What a saved KV state fits: the model file (by identity: a file replaced in place is
    another), the context and its sequences, and the llama.cpp build that wrote it. The one
    scheme for every kept state: a system prompt's here, a chat's (core/sessions.py)."""
    identity = fileid.identity(engine.info.path) or [str(engine.info.path)]
    return [_FORMAT, *identity, engine.n_ctx, engine.n_seq_max, _llama_version()]


def _key(engine: StateEngine, prefix: Sequence[int]) -> str:
    h = hashlib.sha256(json.dumps(state_shape(engine)).encode())
    h.update(array("i", prefix).tobytes())
    return h.hexdigest()[:32]


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except OSError:
        return ""
    return h.hexdigest()[:32]


def _discard(path: Path) -> None:
    """Remove a file if it can be (a read-only or vanished cache is no error)."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _touch(path: Path) -> None:
    try:
        os.utime(path)  # newest first when the budget is trimmed
    except OSError:
        pass


_version: str | None = None


def _llama_version() -> str:
    """llama-cpp-python's version, from its metadata (importing the package for
    `__version__` would load numpy and Jinja)."""
    global _version
    if _version is None:
        from importlib import metadata

        try:
            _version = metadata.version("llama_cpp_python")
        except metadata.PackageNotFoundError:
            _version = "unknown"
    return _version
