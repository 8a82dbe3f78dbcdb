"""A model reference -> a local, verified GGUF, downloading only what is missing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from hermes_cli.errors import DownloadError, ModelError
from hermes_cli.hub.cache import drop, find_cached
from hermes_cli.hub.download import download, offline
from hermes_cli.hub.refs import parse_ref
from hermes_cli.hub.verify import verify


def resolve_model(ref: str, *, quiet: bool = False, err: TextIO | None = None) -> Path:
    """A local, verified file for `ref`, downloading it from the Hub when needed.

    The path returned is what llama.cpp opens (the first part of a split model).
    """
    err = err or sys.stderr
    parsed = parse_ref(ref)
    if isinstance(parsed, Path):
        if not parsed.exists():
            raise ModelError(f"model file not found: {parsed}")
        return parsed
    cached = find_cached(parsed)
    if cached is not None:
        progress = err if err.isatty() and not quiet else None
        corrupt = [p for p in cached if not verify(p, None, progress=progress)]  # one hash each
        if not corrupt:
            return cached[0]
        for p in corrupt:
            err.write(f"warning: the cached {p.name} is corrupt; fetching it again\n")
            drop(p)
    if offline():
        raise DownloadError(f"{parsed} is not cached and HF_HUB_OFFLINE is set",
                            hint="unset HF_HUB_OFFLINE to download it, or pass a local .gguf path")
    return download(parsed, quiet=quiet, err=err)[0]
