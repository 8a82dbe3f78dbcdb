"""Every downloaded file is checked before llama.cpp sees it: its sha256 must equal the
LFS oid, which is also its blob name in the cache. Hashing 5 GB takes seconds, so a
verified file is recorded (its identity: hermes_cli/fileid.py) in hermes's data dir and
hashed again only if it changes."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import TextIO

from hermes_cli import env, fileid


def _verified_db() -> Path:
    return env.data_dir() / "verified.json"


def _load_verified() -> dict[str, list[str | int] | None]:
    try:
        data = json.loads(_verified_db().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _mark_verified(blob: Path) -> None:
    db = _load_verified()
    db[str(blob)] = fileid.identity(blob)
    path = _verified_db()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(db))
    os.replace(tmp, path)


def sha256_file(path: Path, *, progress: TextIO | None = None) -> str:
    digest = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with path.open("rb") as fh:
        while chunk := fh.read(8 << 20):
            digest.update(chunk)
            done += len(chunk)
            if progress is not None and total:
                progress.write(f"\rverifying {path.name}: {100 * done // total}%")
                progress.flush()
    if progress is not None:
        progress.write("\r\x1b[K")
    return digest.hexdigest()


def verify(local: Path, expected_sha256: str | None, *, progress: TextIO | None = None) -> bool:
    """True when `local` is whole: its sha256 is the expected one (by default its blob
    name, which huggingface_hub sets to the LFS sha256). Results are remembered."""
    blob = local.resolve()
    expected = expected_sha256 or blob.name
    if not re.fullmatch(r"[0-9a-f]{64}", expected):
        return True  # nothing to check against (not an LFS file)
    found = fileid.identity(blob)
    if found is None:
        return False
    if _load_verified().get(str(blob)) == found:
        return True
    if sha256_file(blob, progress=progress) != expected:
        return False
    _mark_verified(blob)
    return True
