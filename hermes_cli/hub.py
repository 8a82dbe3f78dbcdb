"""Model references -> a local GGUF file, through the Hugging Face Hub's own client.

A reference is a local path to a `.gguf`, `owner/repo` (the default quant, Q4_K_M),
`owner/repo:QUANT` (matched on the file name's quant suffix, case-insensitive: the Hermes
Θ repository names its files `Hermes-2-Pro-Llama-3-Instruct-Merged-DPO-Q4_K_M.gguf`), or
`owner/repo/dir/file.gguf`.

Choices, and why:
- Cache first, with no network request: a cached model works unplugged and with
  HF_HUB_OFFLINE=1 (llama-cpp-python's `from_pretrained` lists the repository on every
  call and fails offline; shared/reference notes).
- huggingface_hub does every request (metadata, auth headers from HF_TOKEN, HF_ENDPOINT,
  the transfer with its retries and progress bar) and the files land in its standard
  cache layout (`hf cache` sees them, other tools reuse them). One part is ours: since
  huggingface_hub 2.x (PR #4228) `hf_hub_download` writes to a process-unique temporary
  file and deletes it on failure, so a Ctrl-C at 4 of 5 GB starts again from zero. We
  keep the partial file as `blobs/<sha256>.incomplete` and resume it with a Range request.
- Every file is verified before llama.cpp sees it: its sha256 must equal the LFS oid,
  which is also its blob name in the cache. Hashing 5 GB takes seconds, so a verified
  file is recorded (size and mtime) in hermes's data dir and re-hashed only if it
  changes; a corrupt file is deleted and fetched again, never loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from hermes_cli import config
from hermes_cli.config import DEFAULT_QUANT
from hermes_cli.errors import DownloadError, ModelError, UsageError

_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)
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


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int | None
    sha256: str | None


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
    stem = _SPLIT.sub("", Path(filename).name)
    stem = re.sub(r"\.gguf$", "", stem, flags=re.IGNORECASE)
    m = _QUANT.search(stem)
    return m.group(1).upper() if m else None


def select_files(ref: HubRef, files: list[str]) -> list[str]:
    """The file(s) `ref` means among a repository's files: every part of a split GGUF,
    first part first. Empty when nothing matches."""
    ggufs = [f for f in files if f.lower().endswith(".gguf")]
    if ref.filename:
        target = ref.filename
        m = _SPLIT.search(target)
        if m:  # any part named: take all parts of that file
            prefix = target[: m.start()]
            return sorted(f for f in ggufs if f.startswith(prefix) and _SPLIT.search(f))
        return [f for f in ggufs if f == target]
    quant = (ref.quant or DEFAULT_QUANT).upper()
    matched = sorted(f for f in ggufs if quant_of(f) == quant)
    split = [f for f in matched if _SPLIT.search(f)]
    if split:
        first = _SPLIT.sub("", split[0])
        return [f for f in split if _SPLIT.sub("", f) == first]
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


# -- the cache, read without a network request -------------------------------------------


def cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _repo_cache(repo_id: str) -> Path:
    return cache_dir() / ("models--" + repo_id.replace("/", "--"))


def cached_snapshot_files(repo_id: str) -> tuple[Path, list[str]] | None:
    """The snapshot `main` points at, and the files it holds, from disk alone."""
    repo = _repo_cache(repo_id)
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
    if _SPLIT.search(chosen[0]):
        total = int(_SPLIT.search(chosen[0]).group(2))  # type: ignore[union-attr]
        if len(chosen) != total:
            return None
    return [snap / f for f in chosen]


# -- verification -------------------------------------------------------------------------


def _verified_db() -> Path:
    return config.data_dir() / "verified.json"


def _load_verified() -> dict[str, list[int]]:
    try:
        data = json.loads(_verified_db().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _mark_verified(blob: Path) -> None:
    db = _load_verified()
    st = blob.stat()
    db[str(blob)] = [st.st_size, st.st_mtime_ns]
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
    try:
        st = blob.stat()
    except OSError:
        return False
    if _load_verified().get(str(blob)) == [st.st_size, st.st_mtime_ns]:
        return True
    if sha256_file(blob, progress=progress) != expected:
        return False
    _mark_verified(blob)
    return True


def _drop(local: Path) -> None:
    """Remove a corrupt cached file: its blob and its snapshot link."""
    blob = local.resolve()
    for p in {blob, local}:
        try:
            p.unlink()
        except OSError:
            pass


# -- the network --------------------------------------------------------------------------


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def _translate(e: Exception, ref: HubRef | str) -> DownloadError:
    """One clear message for each way the Hub can refuse."""
    from huggingface_hub import errors

    auth = "set HF_TOKEN or run `hf auth login`"
    if isinstance(e, errors.GatedRepoError):
        return DownloadError(f"{ref} is gated: accept its conditions on the Hub, then {auth}")
    if isinstance(e, errors.RepositoryNotFoundError):
        return DownloadError(f"repository not found on the Hub: {ref} (if it is private, {auth})")
    if isinstance(e, errors.RevisionNotFoundError):
        return DownloadError(f"revision not found for {ref}")
    if isinstance(e, (errors.EntryNotFoundError, errors.RemoteEntryNotFoundError)):
        return DownloadError(f"file not found in {ref}")
    if isinstance(e, errors.OfflineModeIsEnabled) or isinstance(e, errors.LocalEntryNotFoundError):
        return DownloadError(f"{ref} is not cached and the Hub cannot be reached ({e})",
                             hint="connect to the network or unset HF_HUB_OFFLINE")
    if isinstance(e, errors.HfHubHTTPError):
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return DownloadError(f"the Hub refused {ref}: {first}")
    return DownloadError(f"cannot reach the Hub at {_endpoint()} for {ref}: {type(e).__name__}: {e}")


def list_remote(repo_id: str) -> tuple[str | None, list[RemoteFile]]:
    """The repository's commit and files, with sizes and sha256 (one API call)."""
    from huggingface_hub import HfApi

    try:
        info = HfApi().model_info(repo_id, files_metadata=True)
    except Exception as e:  # noqa: BLE001 - every Hub failure becomes one message
        raise _translate(e, repo_id) from None
    files = []
    for sib in info.siblings or []:
        lfs = getattr(sib, "lfs", None)
        sha = getattr(lfs, "sha256", None) if lfs is not None else None
        files.append(RemoteFile(sib.rfilename, sib.size, sha))
    return info.sha, files


def available_quants(files: list[RemoteFile]) -> dict[str, int]:
    """quant -> total size (split parts added up)."""
    quants: dict[str, int] = {}
    for f in files:
        q = quant_of(f.path) if f.path.lower().endswith(".gguf") else None
        if q:
            quants[q] = quants.get(q, 0) + (f.size or 0)
    return quants


def _no_match_error(ref: HubRef, files: list[RemoteFile]) -> DownloadError:
    quants = available_quants(files)
    if ref.filename:
        what = f"no file {ref.filename} in {ref.repo_id}"
    else:
        what = f"no {(ref.quant or DEFAULT_QUANT).upper()} GGUF in {ref.repo_id}"
    if not quants:
        return DownloadError(f"{what}; it has no GGUF files")
    listing = ", ".join(f"{q} ({human_size(s)})" for q, s in sorted(quants.items()))
    return DownloadError(f"{what}; quants there: {listing}")


def _check_space(needed: int, where: Path) -> None:
    probe = where
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed > free:
        raise DownloadError(f"not enough disk space: the download needs {human_size(needed)}, "
                            f"{human_size(free)} is free at {probe}",
                            hint="free some space or point HF_HOME at a larger disk")


def _partial_size(repo_id: str, sha256: str | None) -> int:
    if not sha256:
        return 0
    incomplete = _repo_cache(repo_id) / "blobs" / f"{sha256}.incomplete"
    try:
        return incomplete.stat().st_size
    except OSError:
        return 0


def _fetch(repo_id: str, filename: str) -> Path:
    """Download one file into the standard cache, resuming a partial one; return the
    snapshot path (what `hf_hub_download` would return)."""
    from huggingface_hub.file_download import get_hf_file_metadata, hf_hub_url, http_get
    from huggingface_hub.utils import WeakFileLock, build_hf_headers

    meta = get_hf_file_metadata(hf_hub_url(repo_id, filename))
    if not meta.commit_hash or not meta.etag:
        raise DownloadError(f"the Hub did not describe {repo_id}/{filename} (no commit or etag)")
    repo = _repo_cache(repo_id)
    blob = repo / "blobs" / meta.etag
    pointer = repo / "snapshots" / meta.commit_hash / filename
    blob.parent.mkdir(parents=True, exist_ok=True)
    with WeakFileLock(str(blob) + ".lock"):
        if not blob.exists():
            partial = blob.with_name(blob.name + ".incomplete")
            with partial.open("r+b" if partial.exists() else "wb") as fh:
                resume = fh.seek(0, os.SEEK_END)
                if meta.size is not None and resume > meta.size:  # not ours: start over
                    fh.seek(0)
                    fh.truncate()
                    resume = 0
                http_get(meta.location, fh, resume_size=resume, headers=build_hf_headers(),
                         expected_size=meta.size, displayed_filename=Path(filename).name)
            os.replace(partial, blob)
    pointer.parent.mkdir(parents=True, exist_ok=True)
    if not pointer.exists():
        try:
            pointer.symlink_to(os.path.relpath(blob, pointer.parent))
        except OSError:  # no symlinks (Windows without developer mode): a copy
            shutil.copyfile(blob, pointer)
    refs = repo / "refs" / "main"
    refs.parent.mkdir(parents=True, exist_ok=True)
    refs.write_text(meta.commit_hash)
    return pointer


def download(ref: HubRef, *, quiet: bool = False, err: TextIO | None = None) -> list[Path]:
    """Fetch (or re-fetch) every file `ref` needs; return their local paths, verified."""
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    err = err or sys.stderr
    _commit, files = list_remote(ref.repo_id)
    by_path = {f.path: f for f in files}
    chosen = select_files(ref, list(by_path))
    if not chosen:
        raise _no_match_error(ref, files)
    needed = sum((by_path[p].size or 0) - _partial_size(ref.repo_id, by_path[p].sha256)
                 for p in chosen)
    _check_space(needed, cache_dir())
    show_bars = not quiet and err.isatty()
    (enable_progress_bars if show_bars else disable_progress_bars)()
    paths = []
    for name in chosen:
        remote = by_path[name]
        if not quiet:
            err.write(f"downloading {name} ({human_size(remote.size)}) from {ref.repo_id}\n")
            err.flush()
        try:
            local = _fetch(ref.repo_id, name)
        except DownloadError:
            raise
        except Exception as e:  # noqa: BLE001
            raise _translate(e, ref) from None
        if not verify(local, remote.sha256, progress=err if show_bars else None):
            _drop(local)
            raise DownloadError(f"{name} from {ref.repo_id} failed its sha256 check and was "
                                "deleted", hint="run the command again to re-download it")
        paths.append(local)
    return paths


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
            _drop(p)
    if _offline():
        raise DownloadError(f"{parsed} is not cached and HF_HUB_OFFLINE is set",
                            hint="unset HF_HUB_OFFLINE to download it, or pass a local .gguf path")
    return download(parsed, quiet=quiet, err=err)[0]


def cached_models() -> list[dict[str, Any]]:
    """Every GGUF in the Hub cache: repo, file, quant, size."""
    out = []
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
        _drop(p)
    return cached
