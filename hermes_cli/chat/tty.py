"""Questions only the person at the terminal may answer: may this tool run?

Approvals never come from piped input. `printf '/tools t.py\nRemember milk.\ny\n' | hermes
chat` once ran the tool on the piped `y`: whoever writes the input (a script, a file,
another program's output) is not the user being asked. So when stdin is not the terminal,
the question goes to the controlling terminal (`/dev/tty`, as sudo and ssh ask for a
password), and where there is none (cron, CI, a service) nobody can approve: the call is
declined (chat) or refused (ask), and `--yes` is the way to let tools run unattended.
"""

from __future__ import annotations

import os

from hermes_cli.chat.visible import visible

_MAX_ANSWER = 4096  # bytes: an answer is a word; a runaway paste is cut, not buffered


def ask_terminal(question: str) -> str | None:
    """`question` written to the controlling terminal and the line typed there, or None
    when this process has no controlling terminal."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None
    try:
        os.write(fd, visible(question).encode("utf-8", "replace"))
        data = b""
        while not data.endswith(b"\n") and len(data) < _MAX_ANSWER:
            chunk = os.read(fd, _MAX_ANSWER)
            if not chunk:
                break
            data += chunk
        return data.decode("utf-8", "replace").strip()
    except OSError:
        return None
    finally:
        os.close(fd)


def declined_note(name: str) -> str:
    """What the user is told when a call could not be asked about."""
    return (f"{name} was not run: approvals come only from a terminal, and there is none "
            "(pass --yes to let tools run without asking)")
