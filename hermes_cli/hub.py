"""Model references -> a local GGUF file.

A reference is a local path to a `.gguf`, `owner/repo` (the default quant),
`owner/repo:QUANT`, or `owner/repo/path/file.gguf`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hermes_cli.config import DEFAULT_QUANT
from hermes_cli.errors import DownloadError, ModelError, UsageError


@dataclass(frozen=True)
class HubRef:
    repo_id: str
    quant: str | None = None  # matched on the file name's suffix
    filename: str | None = None  # an exact path inside the repository


def parse_ref(ref: str) -> Path | HubRef:
    """Tell a local path from a Hub reference.

    Anything that exists on disk, starts with `.`, `/` or `~`, or is a bare `x.gguf`
    is a path; `owner/repo[:QUANT]` and `owner/repo/dir/file.gguf` are Hub references.
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
    if filename and not filename.endswith(".gguf"):
        raise UsageError(f"{ref!r}: a file inside a repository must end in .gguf")
    if quant and filename:
        raise UsageError(f"{ref!r}: give a quant or a file name, not both")
    return HubRef(repo_id, quant=(quant or None) if not filename else None, filename=filename)


def resolve_model(ref: str, *, quiet: bool = False) -> Path:
    """A local file for `ref`, downloading it from the Hub when needed."""
    parsed = parse_ref(ref)
    if isinstance(parsed, Path):
        if not parsed.exists():
            raise ModelError(f"model file not found: {parsed}")
        return parsed
    raise DownloadError(
        f"cannot fetch {parsed.repo_id}:{parsed.quant or parsed.filename or DEFAULT_QUANT}: "
        "downloading from the Hub is not available in this version",
        hint="download the .gguf yourself and pass its path with --model",
    )
