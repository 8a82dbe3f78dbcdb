"""The processes a test started by hand (pty children), so that conftest ends every one
still running when the test ends, pass or fail: a failed pty test once left `hermes chat
-m endless.gguf --ctx 0` generating for the rest of the run, slowing every later test."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from typing import Any

RUNNING: list[int] = []


@contextlib.contextmanager
def ended(proc: subprocess.Popen[Any]) -> Iterator[subprocess.Popen[Any]]:
    """The block's process, killed and reaped when the block ends however it ends: a test
    that fails partway must not leave `hermes` or a server running for the rest of the run."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
