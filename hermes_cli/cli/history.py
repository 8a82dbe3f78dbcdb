"""`hermes history`: the saved conversations."""

from __future__ import annotations


def history() -> None:
    """List saved conversations (resume one with `hermes chat --resume ID`)."""
    from hermes_cli.core import sessions

    found = sessions.list_sessions()
    if not found:
        print("no saved conversations")
        return
    for s in found:
        print(f"{s.id}  {s.messages:>4} messages  {s.first_line}")
