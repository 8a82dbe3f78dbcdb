"""A chat turn in decision mode (`/choices billing,technical,other`, or a role's `choices`):
the message is answered with one label, scored from the model's logits (core/decision.py),
and the probability of every label is shown under it. The decision reads this message
alone, under the chat's system prompt: it classifies what was just said.
Apart from ChatSession, which hands it the turn, to keep that class to the chat itself.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import TYPE_CHECKING

from hermes_cli.core.decision import decide, decision_messages
from hermes_cli.core.turn import TurnNote
from hermes_cli.engine.params import GenerationResult
from hermes_cli.errors import HermesError
from hermes_cli.modes.events import Event, Final, Reply, TextDelta
from hermes_cli.prompt.messages import Message

if TYPE_CHECKING:
    from hermes_cli.core.chat_session import ChatSession


def decision_turn(session: ChatSession, text: str, labels: list[str]) -> Generator[Event | TurnNote, None, None]:
    """The user's message, then the label as the reply and a line of probabilities."""

    conv = session.conversation
    content, _files = session.compose(text)
    conv.add("user", content)
    session.save()
    messages = decision_messages(conv.system, content, labels)
    started = time.perf_counter()
    try:
        decision = decide(session.backend, messages, labels)
    except HermesError:
        conv.undo()  # nothing was answered: the message is not kept without its reply
        session.save()
        raise
    seconds = time.perf_counter() - started
    yield TextDelta(decision.label)
    ranked = sorted(decision.probabilities.items(), key=lambda kv: -kv[1])
    yield TurnNote("decision: " + " · ".join(f"{label} {p:.1%}" for label, p in ranked))
    result = GenerationResult(text=decision.label, token_ids=[], finish_reason="stop",
                              prompt_tokens=session.backend.prompt_tokens(messages) or 0, prompt_evaluated=0,
                              prompt_reused=0, prompt_seconds=seconds, generation_seconds=0.0)
    reply = Reply(decision.label, [Message("assistant", decision.label)], [result])
    conv.messages.extend(reply.messages)
    session.record(result, 0)
    session.save()
    yield Final(reply)
