"""Branches of a conversation: `/fork` starts one from the current point, `/edit N`
rewrites an earlier user message on a new branch, `/branch K` switches. Branches share
their common start, so switching evaluates only what the KV cache does not hold (the
engine keeps the longest common prefix on its own)."""

from __future__ import annotations

from dataclasses import dataclass

from hermes_cli.core.conversation import Branch, Conversation
from hermes_cli.errors import UsageError
from hermes_cli.prompt.messages import Message


@dataclass(frozen=True)
class BranchSummary:
    index: int
    parent: int | None
    at: int
    messages: int
    last_user: str
    current: bool


def fork(conv: Conversation) -> int:
    """A new branch holding the conversation so far; it becomes current."""
    branches = conv.synced_branches()
    branches.append(Branch(list(conv.messages), parent=conv.current, at=len(conv.messages)))
    return switch(conv, len(branches) - 1)


def user_turns(conv: Conversation) -> list[int]:
    """Indexes (in `messages`) of the user messages, first to last."""
    return [i for i, m in enumerate(conv.messages) if m.role == "user"]


def edit(conv: Conversation, n: int, text: str) -> int:
    """A new branch in which user message `n` (from 1) says `text`; what followed it is
    left on the old branch. Returns the new branch's index (now current)."""
    turns = user_turns(conv)
    if not 1 <= n <= len(turns):
        raise UsageError(f"there is no user message {n} (this branch has {len(turns)})")
    at = turns[n - 1]
    branches = conv.synced_branches()
    branches.append(Branch([*conv.messages[:at], Message("user", text)], parent=conv.current, at=at))
    return switch(conv, len(branches) - 1)


def switch(conv: Conversation, k: int) -> int:
    branches = conv.synced_branches()
    if not 0 <= k < len(branches):
        raise UsageError(f"there is no branch {k} (branches 0-{len(branches) - 1})")
    conv.current = k
    conv.messages = branches[k].messages
    return k


def summaries(conv: Conversation) -> list[BranchSummary]:
    out = []
    for i, b in enumerate(conv.synced_branches()):
        users = [m.content for m in b.messages if m.role == "user"]
        line = users[-1].strip().splitlines()[0][:60] if users and users[-1].strip() else ""
        out.append(BranchSummary(i, b.parent, b.at, len(b.messages), line, i == conv.current))
    return out
