"""Model references: a local path, `owner/repo`, `owner/repo:QUANT` or
`owner/repo/dir/file.gguf`, and which files of a repository a reference means.

The Hermes Θ repository names its files `Hermes-2-Pro-Llama-3-Instruct-Merged-DPO-Q4_K_M.gguf`,
so a quant is matched on the file name's suffix (case-insensitive), never on a fixed name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hermes_cli.errors import UsageError

DEFAULT_QUANT = "Q4_K_M"
SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)
_QUANT = re.compile(r"[-._]((?:I?Q\d+(?:_[A-Z0-9]+)*)|BF16|F16|FP16|F32)$", re.IGNORECASE)



@dataclass(frozen=True)
class HubRef:
    repo_id: str
    quant: str | None = None  # matched on the file name's suffix
    filename: str | None = None  # an exact path inside the repository

    def __str__(self) -> str:
        if self.filename:
            return f"{self.repo_id}/{self.filename}"
        return f"{self.repo_id}:{self.quant or DEFAULT_QUANT}"


def parse_ref(ref: str) -> Path | HubRef:
    """Tell a local path from a Hub reference.

    Anything that exists on disk, starts with `.`, `/` or `~`, or has no `/` is a path;
    `owner/repo[:QUANT]` and `owner/repo/dir/file.gguf` are Hub references.
    """
    ref = ref.strip()
    if not ref:
        raise UsageError("empty model reference")
    path = Path(ref).expanduser()
    if path.exists() or ref.startswith((".", "/", "~")) or "/" not in ref:
        return path
    repo_part, _, quant = ref.partition(":")
    parts = repo_part.split("/")
    if len(parts) < 2 or not all(parts):
        raise UsageError(f"not a model reference: {ref!r} (use PATH.gguf, owner/repo or owner/repo:QUANT)")
    repo_id = "/".join(parts[:2])
    filename = "/".join(parts[2:]) or None
    if filename and not filename.lower().endswith(".gguf"):
        raise UsageError(f"{ref!r}: a file inside a repository must end in .gguf")
    if quant and filename:
        raise UsageError(f"{ref!r}: give a quant or a file name, not both")
    return HubRef(repo_id, quant=quant or None if not filename else None, filename=filename)


def quant_of(filename: str) -> str | None:
    """`Hermes-…-DPO-Q4_K_M.gguf` -> `Q4_K_M`; split parts name their quant too."""
    stem = SPLIT.sub("", Path(filename).name)
    stem = re.sub(r"\.gguf$", "", stem, flags=re.IGNORECASE)
    m = _QUANT.search(stem)
    return m.group(1).upper() if m else None


def select_files(ref: HubRef, files: list[str]) -> list[str]:
    """The file(s) `ref` means among a repository's files: every part of a split GGUF,
    first part first. Empty when nothing matches."""
    ggufs = [f for f in files if f.lower().endswith(".gguf")]
    if ref.filename:
        target = ref.filename
        m = SPLIT.search(target)
        if m:  # any part named: take all parts of that file
            prefix = target[: m.start()]
            return sorted(f for f in ggufs if f.startswith(prefix) and SPLIT.search(f))
        return [f for f in ggufs if f == target]
    quant = (ref.quant or DEFAULT_QUANT).upper()
    matched = sorted(f for f in ggufs if quant_of(f) == quant)
    split = [f for f in matched if SPLIT.search(f)]
    if split:
        first = SPLIT.sub("", split[0])
        return [f for f in split if SPLIT.sub("", f) == first]
    return matched[:1]


def human_size(n: int | None) -> str:
    if n is None:
        return "? B"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.2f} {unit}"
        size /= 1000
    return f"{n} B"
