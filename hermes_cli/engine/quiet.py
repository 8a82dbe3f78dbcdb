"""Silencing llama.cpp's C-level output unless --verbose."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def _silenced_fds() -> Iterator[None]:
    """Send fds 1 and 2 to /dev/null: llama.cpp writes some load messages (SWA cache
    notes, its own errors) straight to the C stderr even with verbose=False."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    from hermes_cli.engine.llama import native_log

    with _silenced_fds(), native_log():
        yield


def quiet(verbose: bool) -> contextlib.AbstractContextManager[None]:
    """llama.cpp's output dropped for the block (unless verbose), without the GIL."""
    return contextlib.nullcontext() if verbose else _silenced()
