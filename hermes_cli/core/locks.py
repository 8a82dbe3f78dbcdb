"""One writer per file: a second `hermes chat --resume ID` on the same conversation, or a
second `hermes batch -o out.jsonl` on the same output, is refused with one line naming
the process that holds it, instead of the last one to save silently winning (a lost
turn) or every id being answered twice.

An advisory `flock` on `<file>.lock` beside the file: the kernel releases it when the
holder exits however it exits (kill -9 included), so a lock is never stale. Where
`fcntl` does not exist (Windows) there is no lock, as before.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from hermes_cli.errors import UsageError


class Holder:
    """The one lock a chat holds: that of the conversation it writes. A new chat's
    conversation is locked from its first save (another `hermes chat --resume ID` could
    otherwise write it too), and moving to another conversation (/new, /load's copy)
    takes the next lock before the last one is let go."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self._stack: contextlib.ExitStack | None = None

    def hold(self, path: Path, what: str) -> None:
        """Hold `path`'s lock (nothing to do if already held); UsageError when another
        process holds it, and then the lock held before is kept."""
        if path == self.path:
            return
        stack = contextlib.ExitStack()
        stack.enter_context(held(path, what))
        self.release()
        self._stack, self.path = stack, path

    def release(self) -> None:
        if self._stack is not None:
            self._stack.close()
        self._stack, self.path = None, None


@contextlib.contextmanager
def held(path: Path, what: str) -> Iterator[None]:
    """Hold the lock of `path` for the block, or raise UsageError (exit 2) at once when
    another process holds it. `what` names the file for the message."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    lock = path.with_name(path.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise UsageError(f"{what} is in use by another hermes (pid {other})",
                             hint="wait for it to finish, or stop it") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock (the file stays: removing it would race a waiter)
