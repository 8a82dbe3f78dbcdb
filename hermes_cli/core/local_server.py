"""Where a running `hermes serve` is: so `--endpoint local` finds the warm model.

`hermes serve` writes its base URL, model and process id to one small file in the cache
directory once its socket listens, and removes it when it stops (only if the file is
still its own: a second server started later owns it). `--endpoint local` reads it; a
file left by a server that was killed names a process that is gone, and is ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from hermes_cli import env
from hermes_cli.errors import UsageError

LOCAL = "local"  # the --endpoint that means the announced server


def _file() -> Path:
    return env.cache_dir() / "serve.json"


@contextlib.contextmanager
def announced(url: str, model: str) -> Iterator[None]:
    """Announce the server at `url` for the block's duration."""
    path = _file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".serve.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"url": url, "model": model, "pid": os.getpid()}))
    os.replace(tmp, path)  # readers see the old file or the new one, never half of one
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: it exists
    return True


def resolve(endpoint: str) -> str:
    """`endpoint` itself, or for `local` the URL of the running `hermes serve`."""
    if endpoint != LOCAL:
        return endpoint
    try:
        data = json.loads(_file().read_text())
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("url"), str) or not _alive(data.get("pid")):
        raise UsageError("--endpoint local: no `hermes serve` is running for this user",
                         hint="start one (hermes serve -m MODEL) in another terminal, or give its URL")
    return str(data["url"])
