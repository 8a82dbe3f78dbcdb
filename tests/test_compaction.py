"""Compaction instead of forgetting: a chat that outgrows its context has its oldest turns
summarized by the model into a note the window keeps; the record keeps every turn.
Real engine, tiny models (the `hi` model's summary is "Hi!"), and a chat on a pty."""

from __future__ import annotations

import pytest

from hermes_cli.core import sessions
from hermes_cli.core.backends import LocalBackend
from hermes_cli.core.chat_session import ChatSession
from hermes_cli.core.compaction import compact
from hermes_cli.core.config import Config
from hermes_cli.core.conversation import NOTE_HEADER, Conversation
from hermes_cli.core.turn import TurnNote
from hermes_cli.errors import UsageError
from hermes_cli.modes import events as ev

WORDS = " ".join(f"word{i}" for i in range(60))  # about 180 tokens a message in the tiny vocabulary


def chat_until_compacted(session: ChatSession, limit: int = 30) -> tuple[int, list[TurnNote]]:
    for n in range(limit):
        notes = [e for e in session.send(f"message {n} {WORDS}") if isinstance(e, TurnNote)]
        if notes:
            return n, notes
    raise AssertionError("the context never filled")


def test_a_full_chat_summarizes_its_oldest_turns_into_a_note_the_model_sees(load) -> None:
    engine = load("hi", n_ctx=1024)
    session = ChatSession(LocalBackend(engine), Conversation(model="tiny"))
    n, notes = chat_until_compacted(session)
    assert notes[0].text.startswith("compacted: the ") and "tokens freed" in notes[0].text and not notes[0].warning
    conv = session.conversation
    assert conv.compaction is not None and conv.compaction.note == "Hi!"
    assert len(conv.messages) == 2 * (n + 1)  # the record keeps every turn
    seen = conv.seen(None)
    assert seen[0].role == "system" and seen[0].content == f"{NOTE_HEADER}\nHi!"
    assert [m.content for m in seen[1:]] == [m.content for m in conv.messages[conv.compaction.covers:]]
    # saved with the chat, and used again when it is resumed
    resumed = sessions.load(conv.id)
    assert resumed.compaction == conv.compaction and resumed.seen(None)[0].content == seen[0].content


def test_with_compact_false_the_oldest_turns_are_left_out_as_before(load) -> None:
    config = Config()
    config.compact = False
    session = ChatSession(LocalBackend(load("hi", n_ctx=1024)), Conversation(model="tiny"), config=config,
                          autosave=False)
    _n, notes = chat_until_compacted(session)
    assert notes[0].warning and notes[0].text.startswith("context full")
    assert session.conversation.compaction is None


def test_compact_on_demand_and_a_note_goes_stale_when_its_turns_change(load) -> None:
    session = ChatSession(LocalBackend(load("hi")), Conversation(model="tiny"), autosave=False)
    with pytest.raises(UsageError, match="nothing to compact"):
        compact(session)
    for n in range(3):
        list(session.send(f"message {n} {WORDS}"))
    done = compact(session)
    assert done.messages == 4 and done.after < done.before  # two long exchanges became one short note
    assert f"{done.before - done.after:,} tokens freed" in done.line()
    conv = session.conversation
    assert conv.seen(None)[0].content.startswith(NOTE_HEADER) and len(conv.seen(None)) == 3
    # /undo twice reaches into what the note covers: it no longer stands for those turns
    session.undo()
    session.undo()
    assert conv.compacted(None) == (None, 0)
    assert [m.content for m in conv.seen(None)] == [f"message 0 {WORDS}", "Hi!"]


@pytest.mark.parametrize("bad", [{"branch": "x"}, {"branch": 0, "covers": -1, "digest": "", "note": ""},
                                 {"branch": 0, "covers": 1, "digest": 3, "note": "n"}, "note"])
def test_a_session_file_with_a_bad_compaction_is_refused_in_one_line(bad) -> None:
    data = Conversation(model="tiny").to_dict()
    data["compaction"] = bad
    with pytest.raises(UsageError, match="not a hermes conversation file"):
        Conversation.from_dict(data)


def test_slash_compact_on_a_terminal_says_what_it_did(hermes_exe, models, tmp_path) -> None:
    from tests.test_chat_terminal import Terminal, env_for

    term = Terminal([*hermes_exe, "chat", "-m", str(models["hi"])], env_for(tmp_path))
    term.expect(r"Ctrl-D to quit")
    for n in range(3):
        term.send(f"message {n}\r")
        term.expect(r"tok/s" + r"[\s\S]*tok/s" * n)  # the reply's footer, once per turn
    term.send("/compact\r")
    term.expect(r"compacted: the 4 oldest messages are now a summary")
    term.send("/prompt\r")
    term.expect(NOTE_HEADER.split("(")[0].strip())
    term.send("/exit\r")
    assert term.wait() == 0


def test_a_turn_after_compaction_is_answered_and_recorded(load) -> None:
    session = ChatSession(LocalBackend(load("hi", n_ctx=1024)), Conversation(model="tiny"), autosave=False)
    chat_until_compacted(session)
    events = list(session.send("one more"))
    assert isinstance(events[-1], ev.Final) and events[-1].reply.text == "Hi!"
    assert session.conversation.messages[-2:][0].content == "one more"


def test_a_context_too_small_to_summarize_in_leaves_turns_out_and_the_turn_is_answered(load) -> None:
    session = ChatSession(LocalBackend(load("hi", n_ctx=160)), Conversation(system="SYSTEM PROMPT"),
                          autosave=False)
    with pytest.raises(UsageError, match="too small to summarize"):
        for n in range(2):
            list(session.send(f"q{n}"))
        compact(session)
    for n in range(6):
        events = list(session.send(f"question number {n}"))
        assert isinstance(events[-1], ev.Final) and events[-1].reply.text == "Hi!"
    assert session.conversation.compaction is None
    assert any(isinstance(e, TurnNote) and e.warning for e in events)  # the turns were left out instead
