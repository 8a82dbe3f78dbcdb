"""The Hugging Face cache, read from disk alone: a cached model works unplugged and with
HF_HUB_OFFLINE=1 (llama-cpp-python's `from_pretrained` lists the repository on every call
and fails offline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hermes_cli.hub.refs import SPLIT, HubRef, quant_of, select_files


def cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def repo_cache(repo_id: str) -> Path:
    return cache_dir() / ("models--" + repo_id.replace("/", "--"))


def cached_snapshot_files(repo_id: str) -> tuple[Path, list[str]] | None:
    """The snapshot `main` points at, and the files it holds, from disk alone."""
    repo = repo_cache(repo_id)
    try:
        commit = (repo / "refs" / "main").read_text().strip()
    except OSError:
        return None
    snap = repo / "snapshots" / commit
    if not snap.is_dir():
        return None
    files = [str(p.relative_to(snap)) for p in snap.rglob("*") if p.is_file()]
    return snap, files


def find_cached(ref: HubRef) -> list[Path] | None:
    """Local paths of every file `ref` needs, when all are cached."""
    found = cached_snapshot_files(ref.repo_id)
    if found is None:
        return None
    snap, files = found
    chosen = select_files(ref, files)
    if not chosen:
        return None
    if SPLIT.search(chosen[0]):
        total = int(SPLIT.search(chosen[0]).group(2))  # type: ignore[union-attr]
        if len(chosen) != total:
            return None
    return [snap / f for f in chosen]


def drop(local: Path) -> None:
    """Remove a corrupt cached file: its blob and its snapshot link."""
    blob = local.resolve()
    for p in {blob, local}:
        try:
            p.unlink()
        except OSError:
            pass


def cached_models() -> list[dict[str, Any]]:
    """Every GGUF in the Hub cache: repo, file, quant, size."""
    out: list[dict[str, Any]] = []
    root = cache_dir()
    if not root.is_dir():
        return out
    for repo_dir in sorted(root.glob("models--*")):
        repo_id = repo_dir.name[len("models--"):].replace("--", "/", 1)
        for snap in sorted((repo_dir / "snapshots").glob("*")):
            for p in sorted(snap.rglob("*.gguf")):
                try:
                    size = p.stat().st_size
                except OSError:
                    continue
                out.append({"repo": repo_id, "file": str(p.relative_to(snap)),
                            "quant": quant_of(p.name), "size": size, "path": p})
    return out


def remove_cached(ref: HubRef) -> list[Path]:
    """Delete the cached files `ref` names (blobs and links); return what was removed."""
    cached = find_cached(ref)
    if not cached:
        return []
    for p in cached:
        drop(p)
    return cached
