"""Where conversations live on disk: `<data dir>/sessions/<id>.json`, newest last."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hermes_cli import env, jsontext
from hermes_cli.core.conversation import Conversation, valid_id
from hermes_cli.errors import HermesError, UsageError


def sessions_dir() -> Path:
    return env.data_dir() / "sessions"


def path_for(conversation_id: str) -> Path:
    if not valid_id(conversation_id):
        raise UsageError(f"not a conversation id: {conversation_id!r} (see `hermes history`)")
    return sessions_dir() / f"{conversation_id}.json"


@dataclass
class SessionSummary:
    id: str
    messages: int
    first_line: str
    path: Path
    branches: int = 1
    model: str = ""


def list_sessions() -> list[SessionSummary]:
    """Every saved conversation, oldest first (ids sort by time)."""
    out = []
    for path in sorted(sessions_dir().glob("*.json")):
        try:
            data = jsontext.loads(path.read_text(encoding="utf-8"))
            msgs = data.get("messages", [])
        except (OSError, ValueError, AttributeError):  # damaged or hostile: not listed
            continue
        if not isinstance(msgs, list):
            continue
        first = next((m.get("content", "") for m in msgs if isinstance(m, dict) and m.get("role") == "user"), "")
        first = first if isinstance(first, str) else ""
        branches = data.get("branches")
        out.append(SessionSummary(path.stem, len(msgs), first.strip().splitlines()[0][:60]
                                  if first.strip() else "", path,
                                  len(branches) if isinstance(branches, list) and branches else 1,
                                  str(data.get("model") or "")))
    return out


@dataclass(frozen=True)
class Match:
    id: str
    branch: int
    role: str
    snippet: str


def grep(text: str) -> list[Match]:
    """Every message of every branch of every saved conversation that contains `text`
    (case-insensitive), with the line around it."""
    needle = text.casefold()
    found = []
    for summary in list_sessions():
        try:
            conv = Conversation.load(summary.path)
        except HermesError:
            continue  # a damaged file is listed by `hermes history`, not searched
        for k, branch in enumerate(conv.synced_branches()):
            # a branch's own messages: what it shares with its parent is searched there
            if k == 0:
                messages = conv.with_system(conv.system)[:1] if conv.system else []
                messages += branch.messages
            else:
                messages = branch.messages[branch.at:]
            for m in messages:
                at = m.content.casefold().find(needle)
                if at >= 0:
                    start = max(0, at - 30)
                    snippet = m.content[start: at + len(text) + 30].replace("\n", " ")
                    found.append(Match(conv.id, k, m.role, ("…" if start else "") + snippet))
    return found


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


# Only the most recent conversations keep a llama.cpp state (a KV cache snapshot; for an
# 8B model about 0.13 MB per token, so ~400 MB for 3,000 tokens): this bounds disk use.
STATES_KEPT = 3
STATE_FORMAT = 3  # 3: the engine's state shape (engine/prompt_cache.py), as the prompt cache keys its states


def _state_paths(conversation_id: str) -> tuple[Path, Path]:
    base = path_for(conversation_id)
    return base.with_suffix(".kv"), base.with_suffix(".kvmeta")


def _signature(engine: Any) -> dict[str, Any]:
    """What a state depends on: the engine's state shape (the model file, the context, the
    llama.cpp build: one scheme with the prompt cache's) and the chat's template."""
    from hermes_cli.engine.prompt_cache import state_shape
    from hermes_cli.prompt.template import template_for

    return {"format": STATE_FORMAT, "shape": state_shape(engine), "template": template_for(engine).signature()}


def save_state(engine: Any, conversation_id: str) -> None:
    """Snapshot the KV cache beside the conversation; keep only the newest few."""
    kv, meta = _state_paths(conversation_id)
    kv.parent.mkdir(parents=True, exist_ok=True)
    engine.save_state(kv)
    meta.write_text(json.dumps(_signature(engine)))
    states = sorted(sessions_dir().glob("*.kv"), key=lambda p: p.stat().st_mtime)
    for old in states[:-STATES_KEPT]:
        old.unlink(missing_ok=True)
        old.with_suffix(".kvmeta").unlink(missing_ok=True)


def restore_state(engine: Any, conversation_id: str) -> int:
    """Load the conversation's KV state if it was made by this model, context size and
    template; return the tokens restored (0: none, or a mismatch, which is discarded)."""
    kv, meta = _state_paths(conversation_id)
    try:
        saved = json.loads(meta.read_text())
    except (OSError, ValueError):
        return 0
    if saved != _signature(engine):
        kv.unlink(missing_ok=True)
        meta.unlink(missing_ok=True)
        return 0
    return engine.load_state(kv)


def save(conversation: Conversation) -> Path:
    path = path_for(conversation.id)
    conversation.save(path)
    return path
