"""What makes a file the same file for everything hermes keeps about it between processes
(a GGUF's header and vocabulary, its prompt states, a chat's KV state, a verified download).

Path, size and mtime are not enough: a re-quantized variant of the same size copied over
the model with `cp -p`, `rsync -t` or an unpacked archive keeps all three, and the next
run then loaded the old model's KV state (wrong answers, no error). A copy cannot keep
the inode's change time (ctime): the kernel sets it on every write, rename or chmod, and
no call sets it back. So a file is known by its resolved path, device, inode, size, mtime
and ctime. Anything that changes one of them costs only a miss (the state is built again).
Beside the layers because the engine and the hub both use it.
"""

from __future__ import annotations

import os
from pathlib import Path


def identity(path: Path | str) -> list[str | int] | None:
    """The file's identity as JSON-able values, or None when it cannot be read (missing,
    not a regular file)."""
    resolved = Path(path).resolve()
    try:
        st = os.stat(resolved)
    except OSError:
        return None
    if not os.path.isfile(resolved):
        return None
    return [str(resolved), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def key(path: Path | str) -> str | None:
    """`identity` as one string, for a digest or a dictionary key."""
    found = identity(path)
    return None if found is None else "|".join(map(str, found))
