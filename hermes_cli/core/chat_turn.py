"""How a chat turn is made: the user's message in, the reply in the chat's mode, the
record and the save, and what a failure takes back. ChatSession (core/chat_session.py)
hands out these Turns (core/turn.py); the REPL only shows them.

Apart from ChatSession to keep that class to the chat's state; the decision-mode turn
is core/chat_decision.py.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING

from hermes_cli.core import compaction
from hermes_cli.core.turn import Turn, TurnNote
from hermes_cli.errors import ContextOverflowError
from hermes_cli.modes.events import Event, Reply, continue_reply
from hermes_cli.prompt.messages import Message

if TYPE_CHECKING:
    from hermes_cli.core.chat_session import ChatSession


def send(session: ChatSession, text: str) -> Turn:
    """The user's message (with its files), then the reply; the message is taken back if
    the turn fails with an error (Ctrl-C at a question keeps what was said)."""
    sent: list[bool] = []  # whether the user's message went in (what a failure takes back)

    def events() -> Generator[Event | TurnNote, None, None]:
        from hermes_cli.core.attachments import describe

        content, files = session.compose(text)  # @path and /read files, fenced
        if files:
            yield TurnNote(f"with {describe(files)}{session.room(session.prompt_tokens(content))}")
        session.conversation.add("user", content)
        sent.append(True)
        session.save()
        yield from reply_events(session)

    def failed(error: BaseException) -> None:
        if sent and isinstance(error, Exception):
            session.conversation.undo()
            session.save()

    return Turn(events(), done=lambda reply: record(session, reply), failed=failed)


def respond(session: ChatSession, *, continuing: Message | None = None, restore: list[Message] | None = None,
            note: TurnNote | None = None) -> Turn:
    """The reply to the conversation as it stands (`note` said first), or the rest of
    `continuing`; `restore` goes back on the end of the conversation when no reply comes
    (the reply retried, the one continued)."""
    def events() -> Generator[Event | TurnNote, None, None]:
        if note is not None:
            yield note
        yield from reply_events(session, continuing)

    def failed(_error: BaseException) -> None:
        if restore:
            session.conversation.messages.extend(restore)
            session.save()

    return Turn(events(), done=lambda reply: record(session, reply), failed=failed)


def reply_events(session: ChatSession, continuing: Message | None = None) -> Generator[Event | TurnNote, None, None]:
    """The reply's events, in the chat's mode, to the conversation as it stands (it ends
    with a user turn), or the rest of `continuing` (taken off the end)."""
    from hermes_cli.core.reply import stream

    conv = session.conversation
    mode = session.reply_mode()
    system = mode.system_prompt(conv.system)
    try:
        sent, left_out = session.backend.window(conv, system, conv.params.max_tokens or 1024)
    except ContextOverflowError as e:
        if continuing is not None:
            raise
        raise ContextOverflowError(e.prompt_tokens, e.n_ctx,
                                   message=f"{e}; the message was not sent") from None
    done = compaction.before_turn(session, left_out) if continuing is None else None
    if done is not None:  # the oldest turns, summarized into a note the window keeps
        yield TurnNote(done.line())
        sent, left_out = session.backend.window(conv, system, conv.params.max_tokens or 1024)
    if left_out:
        yield TurnNote(compaction.left_out_text(left_out), warning=True)
    logic = mode.logic(sent, conv.params, approve=session.approve) if continuing is None else continue_reply(
        [*sent, Message("assistant", continuing.content, token_ids=continuing.token_ids, open=True)], conv.params)
    yield from stream(session.backend, logic)  # a cancel thrown in reaches the generation through here


def record(session: ChatSession, reply: Reply) -> None:
    """A turn's reply into the conversation, counted and saved (before Final is shown)."""
    session.conversation.messages.extend(reply.messages)
    session.record(reply.last, reply.completion_tokens)
    session.last_reasoning = reply.reasoning  # /think shows it; the answer is what is kept
    session.save()
