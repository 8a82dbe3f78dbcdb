"""Where conversations live on disk: `<data dir>/sessions/<id>.json`, newest last."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from hermes_cli import config
from hermes_cli.conversation import Conversation
from hermes_cli.errors import UsageError


def sessions_dir() -> Path:
    return config.data_dir() / "sessions"


def path_for(conversation_id: str) -> Path:
    return sessions_dir() / f"{conversation_id}.json"


@dataclass
class SessionSummary:
    id: str
    messages: int
    first_line: str
    path: Path


def list_sessions() -> list[SessionSummary]:
    """Every saved conversation, oldest first (ids sort by time)."""
    out = []
    for path in sorted(sessions_dir().glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            msgs = data.get("messages", [])
        except (OSError, ValueError, AttributeError):
            continue
        first = next((m.get("content", "") for m in msgs if m.get("role") == "user"), "")
        out.append(SessionSummary(path.stem, len(msgs), first.strip().splitlines()[0][:60]
                                  if first.strip() else "", path))
    return out


def load(conversation_id: str | None) -> Conversation:
    """A saved conversation by id, or the most recent one when `conversation_id` is None."""
    if conversation_id is None:
        found = list_sessions()
        if not found:
            raise UsageError("no saved conversation to continue")
        return Conversation.load(found[-1].path)
    path = path_for(conversation_id)
    if not path.exists():
        raise UsageError(f"no saved conversation {conversation_id!r} (see `hermes history`)")
    return Conversation.load(path)


def save(conversation: Conversation) -> Path:
    path = path_for(conversation.id)
    conversation.save(path)
    return path
