"""What a one-shot command reads besides its arguments: piped stdin (bounded, strict
UTF-8), and whether a `-f '!command'` may run (asked at the terminal, never on stdin).
Shared by `ask` and `cmd`."""

from __future__ import annotations

import sys
from collections.abc import Callable

from hermes_cli import inputs
from hermes_cli.errors import UsageError


def command_asker(yes: bool) -> Callable[[str], bool]:
    """Whether `-f '!cmd'` may run: with --yes, or on a y typed at the terminal (never
    read from piped stdin: chat/tty.py)."""

    def ask(command: str) -> bool:
        if yes:
            return True
        from hermes_cli.chat.tty import ask_terminal

        answer = ask_terminal(f"run `{command}` and attach its output? [y/N] ")
        return (answer or "").strip().lower() in ("y", "yes")

    return ask


def read_stdin() -> str | None:
    """Piped stdin as text, or None when stdin is a terminal or absent. Read as bytes and
    decoded strictly: text decoding would turn a stray byte into a lone surrogate that
    fails much later, deep in tokenizing, as a UnicodeEncodeError."""
    stream = sys.stdin
    if stream is None or stream.closed:
        return None
    try:
        if stream.isatty():
            return None
        if hasattr(stream, "buffer"):
            data = inputs.read_stdin(stream.buffer)  # bounded: `yes | hermes ask` is refused
        else:
            data = stream.read().encode("utf-8", "surrogateescape")
    except (OSError, ValueError):
        return None
    try:
        return data.decode("utf-8-sig")  # a byte-order mark is not part of the text
    except UnicodeDecodeError as e:
        raise UsageError(f"stdin is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start:,})",
                         hint="convert it first, e.g. iconv -f latin1 -t utf-8") from None
