"""Reading what a user hands us (a file named on the command line or in chat, a session to
load, piped stdin) in bounded time and memory.

`-f /dev/zero`, `/read /dev/urandom` or `/load /dev/zero` read until memory ran out: a
device reports size 0 and never ends. `yes word | hermes ask …` did the same on stdin.
Files must be regular files and are read up to a limit (one byte past it says "too
large"); stdin is read in chunks up to STDIN_LIMIT. Beside the layers because the front
ends and core both read user files.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from hermes_cli.engine.params import LOAD_LIMITS
from hermes_cli.errors import ContextOverflowError, UsageError

CHUNK = 1 << 16
# The most stdin hermes reads for one prompt, whatever the model: far more than the
# contexts it is used with hold (131,072 tokens are about half a megabyte of text).
STDIN_LIMIT = 64 << 20
LARGEST_CONTEXT = LOAD_LIMITS["ctx"][1]  # tokens: --ctx's ceiling, named in the message


def read_file(path: Path, limit: int, name: str | None = None) -> bytes:
    """A regular file's bytes; UsageError (one line naming it) for a directory, a device,
    a pipe or a socket, and for a file over `limit` bytes."""
    name = name or str(path)
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if stat.S_ISDIR(st.st_mode):
                raise UsageError(f"{name} is a directory")
            if not stat.S_ISREG(st.st_mode):
                raise UsageError(f"{name} is not a regular file (a device, pipe or socket), so it may "
                                 "never end")
            if st.st_size > limit:
                raise UsageError(f"{name} is {_size(st.st_size)}: over the {_size(limit)} a file may be")
            data = fh.read(limit + 1)
    except IsADirectoryError:
        raise UsageError(f"{name} is a directory") from None
    except FileNotFoundError:
        raise UsageError(f"{name}: no such file") from None
    except OSError as e:
        raise UsageError(f"cannot read {name}: {e.strerror or e}") from None
    if len(data) > limit:  # it grew while we read it (/proc, a log being written)
        raise UsageError(f"{name} is over the {_size(limit)} a file may be")
    return data


def read_stdin(stream: BinaryIO, limit: int = STDIN_LIMIT) -> bytes:
    """Piped stdin whole, read in chunks; ContextOverflowError (exit 4) once it passes
    `limit` bytes (a pipe that never ends is refused in bounded memory)."""
    parts: list[bytes] = []
    size = 0
    while chunk := stream.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise ContextOverflowError(size, LARGEST_CONTEXT, message=(
                f"stdin goes on past {_size(limit)} ({limit:,} bytes; it may never end), the most hermes "
                f"reads for one prompt (the largest context it loads holds {LARGEST_CONTEXT:,} tokens)"))
        parts.append(chunk)
    return b"".join(parts)


def _size(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n >= 1 << 20 else f"{n:,} bytes"
