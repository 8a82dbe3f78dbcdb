"""Compaction instead of forgetting: when a chat outgrows the context, its oldest turns
are summarized by the model into a short note that stays in the window (after the system
prompt), instead of being left out unsaid. The record keeps every turn (export,
`history --grep`); the note (core/conversation.py: Compaction) is saved with the chat and
used only while the turns it covers are unchanged.

Automatic when the next turn would leave turns out (`compact = true` in the config, the
default), and on demand with /compact. The chat says what was summarized and how many
tokens it freed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hermes_cli.core.conversation import Compaction, digest
from hermes_cli.core.turn import run
from hermes_cli.errors import HermesError, UsageError
from hermes_cli.modes.events import text_reply
from hermes_cli.prompt.messages import Message

if TYPE_CHECKING:
    from hermes_cli.core.chat_session import ChatSession

NOTE_TOKENS = 300  # the note's length at most: it must leave the window room
MESSAGE_CHARS = 4000  # each message's share of the text summarized (its start and end)
INSTRUCTION = ("Summarize the conversation below for your own later use, in at most 200 words: keep "
               "names, numbers, decisions, what the user wants and what is still open. Write only the summary.")


@dataclass(frozen=True)
class Compacted:
    messages: int  # how many messages the note now stands for
    before: int | None  # tokens of the prompt before and after (None: a served engine's)
    after: int | None

    def line(self) -> str:
        freed = ""
        if self.before is not None and self.after is not None:
            freed = (f"; {self.before - self.after:,} tokens freed" if self.after < self.before else
                     f"; no tokens freed: the note is {self.after - self.before:,} longer than those turns were")
        return (f"compacted: the {self.messages} oldest messages are now a summary the model sees in their "
                f"place{freed} (the saved chat keeps every turn)")


def compact(session: ChatSession, *, upto: int | None = None) -> Compacted:
    """Summarize the messages before `upto` (default: all but the last exchange) into the
    chat's note; it replaces an earlier note, which it takes in."""
    conv = session.conversation
    if upto is None:
        users = [i for i, m in enumerate(conv.messages) if m.role == "user"]
        upto = users[-1] if users else 0
    _system, start = conv.compacted(None)
    if upto - start < 2:
        raise UsageError("nothing to compact yet: the conversation is one exchange long")
    before = session.prompt_tokens()
    previous = conv.compaction.note if start and conv.compaction is not None else None
    n_ctx = session.backend.n_ctx
    budget = NOTE_TOKENS if n_ctx is None else min(NOTE_TOKENS, n_ctx // 4)
    asking = [Message("system", "You write faithful, short summaries."), Message("user", INSTRUCTION)]
    room = None if n_ctx is None else n_ctx - (session.backend.prompt_tokens(asking) or 0) - budget - 8
    if room is not None and room <= 0:
        raise UsageError(f"the {n_ctx}-token context is too small to summarize the chat in")
    text = _transcript(session, previous, conv.messages[start:upto], room)
    params = dataclasses.replace(conv.params, max_tokens=budget, temperature=min(conv.params.temperature, 0.3))
    asking[1] = Message("user", f"{INSTRUCTION}\n\n{text}")
    reply = run(session.backend, text_reply(asking, params))
    note = reply.text.strip() or "(the earlier turns held nothing to keep)"
    conv.compaction = Compaction(conv.current, upto, digest(conv.messages[:upto]), note)
    session.save()
    return Compacted(upto, before, session.prompt_tokens())


def _transcript(session: ChatSession, previous: str | None, messages: list[Message], room: int | None) -> str:
    """The turns as text, each cut to MESSAGE_CHARS (its start and its end); within
    `room` tokens (None: a served engine's, unknown), the newest turns kept first."""
    lines = [f"Summary so far: {previous}"] if previous else []
    for m in messages:
        content = m.content if len(m.content) <= MESSAGE_CHARS else (
            m.content[:MESSAGE_CHARS // 2] + "\n[…]\n" + m.content[-MESSAGE_CHARS // 2:])
        lines.append(f"{m.role.capitalize()}: {content}")
    if room is None:
        return "\n\n".join(lines)
    kept: list[str] = []
    used = 0
    for line in reversed(lines):  # the newest turns matter most to what comes next
        size = session.backend.count(line) or 0
        if used + size > room:
            break
        kept.append(line)
        used += size
    return "\n\n".join(reversed(kept))


def left_out_text(left_out: int) -> str:
    return (f"context full: the model sees the newest turns; the {left_out} oldest messages are left out of "
            "its window (the system prompt is kept; the saved chat keeps them)")


def before_turn(session: ChatSession, left_out: int) -> Compacted | None:
    """When the window would leave `left_out` messages out: compact them (and what the
    note covered) instead, if the config lets it; None when nothing was done."""
    config = session.config
    if not left_out or (config is not None and not config.compact):
        return None
    conv = session.conversation
    _system, start = conv.compacted(None)
    users = [i for i, m in enumerate(conv.messages) if m.role == "user"]
    must = next((i for i in users if i >= start + left_out), None)  # what the window would leave out
    if must is None:
        return None
    keep = users[-2] if len(users) >= 2 else users[-1]  # the last exchange stays whole if it can
    try:
        return compact(session, upto=max(must, keep))
    except HermesError:  # a context too small to summarize in, a failed generation: leave turns out
        return None
