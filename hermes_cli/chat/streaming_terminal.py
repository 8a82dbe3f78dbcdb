"""Keeping the screen consistent while a reply streams into a live area.

A live area is redrawn by moving the cursor up over the lines it drew last time. Two
things break that bookkeeping, and each leaves the area's top lines on screen twice:

- the terminal echoing keys the user types ahead (Enter moves the cursor a line down;
  `^C` can wrap a full line). `keys_not_echoed` turns echo off while a reply streams; the
  line discipline still queues what was typed, so it waits whole at the next prompt, and
  Ctrl-C still sends SIGINT (without flushing that queue: NOFLSH).
- Ctrl-C landing halfway through a frame (after the area's height was recorded but
  before the bytes were written, or after a block was printed but before it was marked
  printed). `InterruptsBetweenFrames` holds SIGINT until the frame is complete; a frame is
  milliseconds, so the user does not notice.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any, TextIO


@contextlib.contextmanager
def keys_not_echoed(stdin: TextIO) -> Iterator[None]:
    """Terminal echo off for the duration (a no-op when stdin is not a terminal)."""
    try:
        import termios

        fd = stdin.fileno()
        if not stdin.isatty():
            raise OSError
        before = termios.tcgetattr(fd)
    except (ImportError, OSError, ValueError, AttributeError):
        yield
        return
    quiet = list(before)
    quiet[3] &= ~(termios.ECHO | termios.ECHONL)
    # Ctrl-C (SIGINT from the line discipline) flushes the input queue unless NOFLSH is
    # set: what was typed ahead (`/stats` Enter) was lost when the reply was stopped.
    quiet[3] |= termios.NOFLSH
    try:
        termios.tcsetattr(fd, termios.TCSANOW, quiet)  # TCSANOW: keep what was typed
    except termios.error:
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(termios.error):
            termios.tcsetattr(fd, termios.TCSANOW, before)


class InterruptsBetweenFrames:
    """SIGINT raises KeyboardInterrupt as usual, except inside `frame()`, where it is held
    and raised when the frame ends. Installed only over Python's default handler, in
    the main thread; elsewhere `frame()` holds nothing."""

    def __init__(self) -> None:
        self._depth = 0
        self._pending = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> InterruptsBetweenFrames:
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False
        if self._pending:  # held by a frame that raised something else
            self._pending = False
            if exc[0] is None:
                raise KeyboardInterrupt

    def _on_sigint(self, _signum: int, _frame: FrameType | None) -> None:
        if self._depth:
            self._pending = True
            return
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def frame(self, *, reply_complete: bool = False) -> Iterator[None]:
        """Hold SIGINT while drawing. `reply_complete`: the last frame of a reply, after
        which there is nothing left to stop, so a Ctrl-C held there is dropped rather
        than turning a finished reply into an interrupted one."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if self._depth == 0 and self._pending:
            self._pending = False
            if not reply_complete:
                raise KeyboardInterrupt
