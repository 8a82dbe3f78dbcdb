"""Downloading a model through the Hugging Face Hub's own client.

huggingface_hub does every request (metadata, auth headers from HF_TOKEN, HF_ENDPOINT,
the transfer with its retries and progress bar) and the files land in its standard cache
layout (`hf cache` sees them, other tools reuse them). One part is ours: since
huggingface_hub 2.x (PR #4228) `hf_hub_download` writes to a process-unique temporary
file and deletes it on failure, so a Ctrl-C at 4 of 5 GB starts again from zero. We keep
the partial file as `blobs/<sha256>.incomplete` and resume it with a Range request. A
file whose sha256 does not match is deleted and fetched again, never loaded.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from hermes_cli.errors import DownloadError
from hermes_cli.hub.cache import cache_dir, drop, repo_cache
from hermes_cli.hub.refs import DEFAULT_QUANT, HubRef, human_size, quant_of, select_files
from hermes_cli.hub.retry import with_retries
from hermes_cli.hub.verify import verify


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int | None
    sha256: str | None


def offline() -> bool:
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
    if isinstance(e, (errors.OfflineModeIsEnabled, errors.LocalEntryNotFoundError)):
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
        info = with_retries(lambda: HfApi().model_info(repo_id, files_metadata=True))
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
    incomplete = repo_cache(repo_id) / "blobs" / f"{sha256}.incomplete"
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
    repo = repo_cache(repo_id)
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
            local = with_retries(functools.partial(_fetch, ref.repo_id, name))  # resumes its partial file
        except DownloadError:
            raise
        except Exception as e:  # noqa: BLE001
            raise _translate(e, ref) from None
        if not verify(local, remote.sha256, progress=err if show_bars else None):
            drop(local)
            raise DownloadError(f"{name} from {ref.repo_id} failed its sha256 check and was "
                                "deleted", hint="run the command again to re-download it")
        paths.append(local)
    return paths
