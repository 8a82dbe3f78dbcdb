"""`hermes history` (the saved conversations, or a search through them) and `hermes
export` (one of them as Markdown or JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def _shown(text: str) -> str:
    """Saved text as printed: on a terminal its escape sequences are made visible (a
    model's `ESC ]0;… BEL` would retitle the window); piped, byte-exact."""
    import sys

    from hermes_cli.chat.visible import shown_on

    return shown_on(sys.stdout)(text)


def history(
    grep: Annotated[Optional[str], typer.Option(
        "--grep", help="Search every message of every branch of every saved conversation "
        "(case-insensitive).", show_default=False)] = None,
) -> None:
    """List saved conversations (resume one with `hermes chat --resume ID`)."""
    from hermes_cli.core import sessions
    from hermes_cli.errors import NothingFound

    if grep is not None:
        matches = sessions.grep(grep)
        wheres = [f"branch {m.branch}" if m.branch else "" for m in matches]
        pad = max(map(len, wheres), default=0)
        for m, where in zip(matches, wheres):  # columns line up whatever the branch numbers
            print(f"{m.id}  {where:<{pad}}{'  ' if pad else ''}{m.role:<9} {_shown(m.snippet)}")
        if not matches:  # as grep: nothing found is exit 1, said on stderr
            raise NothingFound(f"no saved message contains {grep!r}")
        return
    found = sessions.list_sessions()
    if not found:
        print("no saved conversations")
        return
    counts = [f"{s.branches} branches" if s.branches > 1 else "" for s in found]
    pad = max(map(len, counts), default=0)
    digits = max(len(str(s.messages)) for s in found)
    for s, count in zip(found, counts):  # columns line up whatever the counts
        print(f"{s.id}  {s.messages:>{digits}} messages  {count:<{pad}}{'  ' if pad else ''}{_shown(s.first_line)}")


def export(
    conversation_id: Annotated[str, typer.Argument(metavar="ID", help="From `hermes history`.")],
    format_: Annotated[str, typer.Option(
        "--format", help="md (a readable transcript, every branch) or json (the session file).")] = "md",
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Write here (atomically). Default: stdout.", show_default=False)] = None,
) -> None:
    """Write one saved conversation out as Markdown or JSON."""
    import json

    from hermes_cli.core import sessions
    from hermes_cli.core.conversation import write_atomic
    from hermes_cli.errors import UsageError

    if format_ not in ("md", "json"):
        raise UsageError(f"--format {format_}: use md or json")
    conv = sessions.load(conversation_id)
    text = conv.markdown() if format_ == "md" else json.dumps(conv.to_dict(), ensure_ascii=False, indent=2) + "\n"
    if output is None:
        print(_shown(text), end="" if text.endswith("\n") else "\n")
        return
    try:
        write_atomic(output, text)
    except OSError as e:
        raise UsageError(f"cannot write {output}: {e.strerror or e}") from None
