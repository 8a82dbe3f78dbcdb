"""A chat turn driven with no terminal and no monkeypatching: ChatSession.send owns the
turn (files, window, reply, recording, saving) and hands out events; the REPL only
shows them. Real engine, tiny models."""

from __future__ import annotations

from pathlib import Path

import pytest

from hermes_cli.core import sessions
from hermes_cli.core.backends import LocalBackend
from hermes_cli.core.chat_session import ChatSession
from hermes_cli.core.conversation import Conversation
from hermes_cli.core.turn import TurnNote
from hermes_cli.engine.params import SamplingParams
from hermes_cli.errors import ContextOverflowError
from hermes_cli.modes import events as ev


def turn(session: ChatSession, text: str) -> tuple[list[object], ev.Reply]:
    shown = list(session.send(text))
    final = shown[-1]
    assert isinstance(final, ev.Final)
    return shown[:-1], final.reply


def test_a_turn_streams_its_text_and_is_recorded_and_saved_before_final(load) -> None:
    session = ChatSession(LocalBackend(load("hi")), Conversation(model="tiny"))
    events = session.send("hello")
    text = []
    for event in events:
        if isinstance(event, ev.Final):
            # by the time the front end sees Final, the turn is in the record and on disk
            assert [m.content for m in sessions.load(session.conversation.id).messages] == ["hello", "Hi!"]
            break
        text.append(event.text)  # type: ignore[union-attr]
    assert "".join(text) == "Hi!"
    assert session.last_result is not None and session.total_tokens == 3


def test_a_cancelled_turn_ends_with_final_and_keeps_the_partial_reply(load) -> None:
    for how in ("cancel", "throw"):
        session = ChatSession(LocalBackend(load("endless")), Conversation(model="tiny"), autosave=False)
        turn = session.send("go")
        events = iter(turn)
        seen = ""
        while len(seen) < 20:
            seen += next(events).text  # type: ignore[union-attr]
        if how == "cancel":  # what the REPL does on Ctrl-C
            turn.cancel()
            final = next(events)
        else:  # a reader that throws Ctrl-C in is heard the same way
            final = events.throw(KeyboardInterrupt())
        assert isinstance(final, ev.Final) and final.reply.stopped == "interrupted", how
        assert turn.reply is final.reply and turn.ended
        kept = session.conversation.messages[-1]
        assert kept.role == "assistant" and kept.content.startswith(seen) and "abab" in kept.content


class FailingBackend(LocalBackend):
    """A model whose generations fail (llama.cpp erring mid-turn), after `good` that work."""

    def __init__(self, engine, good: int = 0) -> None:
        super().__init__(engine)
        self.good = good

    def start(self, messages, params, grammar):
        if self.good <= 0:
            raise RuntimeError("llama_decode failed")
        self.good -= 1
        return super().start(messages, params, grammar)


def test_a_failed_turn_takes_back_the_users_message_and_a_failed_retry_restores_the_reply(load) -> None:
    session = ChatSession(FailingBackend(load("hi"), good=1), Conversation(model="tiny"))
    turn(session, "first")
    with pytest.raises(RuntimeError):
        list(session.send("second"))
    assert [m.content for m in session.conversation.messages] == ["first", "Hi!"]  # no message without reply
    assert [m.content for m in sessions.load(session.conversation.id).messages] == ["first", "Hi!"]
    with pytest.raises(RuntimeError):
        list(session.retry())
    assert [m.content for m in session.conversation.messages] == ["first", "Hi!"]  # the old reply is back


def test_retry_and_edit_are_one_turn_each(load) -> None:
    session = ChatSession(LocalBackend(load("hi")), Conversation(model="tiny"), autosave=False)
    turn(session, "first")
    assert isinstance(list(session.retry())[-1], ev.Final)
    assert [m.content for m in session.conversation.messages] == ["first", "Hi!"]
    shown = list(session.edit(1, "changed"))
    assert isinstance(shown[0], TurnNote) and shown[0].text.startswith("branch 1")
    assert [m.content for m in session.conversation.messages] == ["changed", "Hi!"]


def test_files_are_announced_with_their_size_before_the_reply(load, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("some notes\n")
    session = ChatSession(LocalBackend(load("hi")), Conversation(model="tiny"), autosave=False)
    shown, reply = turn(session, "read @notes.txt")
    notes = [e for e in shown if isinstance(e, TurnNote)]
    assert len(notes) == 1 and notes[0].text.startswith("with notes.txt (") and " of 2,048 tokens" in notes[0].text
    assert "some notes" in session.conversation.messages[0].content and reply.text == "Hi!"


def test_a_message_that_cannot_fit_is_refused_and_leaves_the_conversation_as_it_was(load) -> None:
    session = ChatSession(LocalBackend(load("hi", n_ctx=256)), Conversation(model="tiny"))
    turn(session, "hello")
    before = [m.content for m in session.conversation.messages]
    with pytest.raises(ContextOverflowError, match="the message was not sent"):
        list(session.send("word " * 400))
    assert [m.content for m in session.conversation.messages] == before
    assert [m.content for m in sessions.load(session.conversation.id).messages] == before


def test_old_turns_left_out_of_the_window_are_said_and_kept_in_the_record(load) -> None:
    """With `compact = false` (compaction: tests/test_compaction.py)."""
    from hermes_cli.core.config import Config

    config = Config()
    config.compact = False
    conv = Conversation(model="tiny", params=SamplingParams(max_tokens=8))
    session = ChatSession(LocalBackend(load("hi", n_ctx=256)), conv, autosave=False, config=config)
    notes: list[TurnNote] = []
    for i in range(12):
        shown, _ = turn(session, f"turn {i} " + "filler " * 12)
        notes += [e for e in shown if isinstance(e, TurnNote)]
    assert notes and all(n.warning and "left out of its window" in n.text for n in notes)
    assert len(session.conversation.messages) == 24  # the record keeps every turn


def test_tool_calls_ask_through_confirm_and_always_is_remembered(load, tmp_path: Path) -> None:
    (tmp_path / "t.py").write_text("def add(a: int, b: int) -> int:\n    'Add.'\n    return a + b\n")
    asked: list[str] = []

    def confirm(call: object) -> str:
        asked.append(call.name)  # type: ignore[attr-defined]
        return "a"

    conv = Conversation(model="tiny", params=SamplingParams(max_tokens=120, seed=1))
    session = ChatSession(LocalBackend(load("caller", n_ctx=8192)), conv, autosave=False, confirm=confirm)
    session.add_tools(str(tmp_path / "t.py"))
    _shown, reply = turn(session, "add")
    ran = [m for m in session.conversation.messages if m.role == "tool"]
    assert asked == ["add"] and len(ran) >= 2  # asked once, then "always" for this chat
    assert "add" in session.always_allowed and reply.rounds >= 2


def test_a_chat_compiles_its_schema_once_however_many_turns_use_it(load, monkeypatch) -> None:
    import json

    import hermes_cli.engine.grammars as grammars

    calls: list[str] = []
    real = grammars.check_grammar

    def counting(kind: str, source: str) -> list[str]:
        calls.append(source)
        return real(kind, source)

    monkeypatch.setattr(grammars, "check_grammar", counting)
    conv = Conversation(model="tiny", params=SamplingParams(max_tokens=40, seed=1))
    session = ChatSession(LocalBackend(load("random")), conv, autosave=False)
    session.set_schema(json.dumps({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}))
    for i in range(3):
        _shown, reply = turn(session, f"turn {i}")
        assert isinstance(reply.value, dict) and isinstance(reply.value["a"], int)
    session.prompt_text()
    assert len(calls) == 1


@pytest.mark.parametrize("kind", ["fake", "engine"])
def test_an_ask_a_chat_turn_and_a_batch_line_go_through_one_backend_and_one_turn(load, kind: str) -> None:
    """Issue 32's goal: no terminal, no monkeypatching; the same Backend object answers
    all three, each driven as a Turn (core/turn.py)."""
    from hermes_cli.core.batch import BatchOptions, Item
    from hermes_cli.core.batch_run import answer_line
    from hermes_cli.core.one_shot import Question, prepare
    from hermes_cli.core.turn import Turn
    from hermes_cli.prompt.messages import Message
    from tests.fake_backend import FakeBackend

    backend = FakeBackend("Hi!") if kind == "fake" else LocalBackend(load("hi"))
    asked = prepare(Question("hello")).answer(backend, approve=lambda call: False)
    assert isinstance(asked, Turn) and asked.result().text == "Hi!"
    session = ChatSession(backend, Conversation(model="tiny"), autosave=False)
    chat = session.send("hello")
    assert isinstance(chat, Turn) and [e for e in chat][-1].reply.text == "Hi!"
    assert [m.content for m in session.conversation.messages] == ["hello", "Hi!"]
    record = answer_line(backend, Item(id=1, line=1, messages=[Message("user", "hello")]), BatchOptions())
    assert record["output"] == "Hi!" and record["id"] == 1
