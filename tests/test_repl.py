"""The REPL driven as a user would, through prompt_toolkit's pipe input, on the real engine."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from prompt_toolkit import PromptSession
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from hermes_cli.chat import commands, completion
from hermes_cli.chat.repl import Repl
from hermes_cli.core import sessions
from hermes_cli.core.backends import LocalBackend
from hermes_cli.core.chat_session import ChatSession
from hermes_cli.core.conversation import Conversation
from hermes_cli.engine.params import SamplingParams

ENTER = "\r"


class Driven:
    """A REPL whose keyboard is a pipe: `run(...)` types the lines, then Ctrl-D."""

    def __init__(self, engine, conversation: Conversation | None = None, **session_options) -> None:
        self.out = io.StringIO()
        self.console = Console(file=self.out, width=100, color_system=None)
        self.engine = engine
        self.conversation = conversation or Conversation(model="tiny")
        self.session_options = session_options  # ChatSession's: mcp=..., auto_approve=...
        self.repl: Repl | None = None
        self.chat: ChatSession | None = None

    def run(self, *lines: str) -> str:
        with create_pipe_input() as pipe:
            pipe.send_text("".join(line + ENTER for line in lines))
            pipe.close()  # end of input = Ctrl-D
            session = PromptSession(input=pipe, output=DummyOutput(), history=InMemoryHistory())
            # the pipe stands for a person typing at a terminal
            self.repl = Repl(console=self.console, keyboard=session, keyboard_is_terminal=True)
            backend = self.chat.backend if self.chat is not None else LocalBackend(self.engine)
            self.chat = ChatSession(backend, self.conversation, warn=self.repl.error,
                                    confirm=self.repl.confirm, **self.session_options)
            assert self.repl.run(self.chat) == 0
            self.conversation = self.chat.conversation
        return self.out.getvalue()


@pytest.fixture
def hi(load):
    return load("hi")


def test_a_turn_streams_the_reply_and_prints_a_footer(hi) -> None:
    d = Driven(hi)
    out = d.run("hello")
    assert "Hi!\n" in out
    assert "3 tokens" in out and "tok/s" in out and "context 28/2048" in out
    assert [m.role for m in d.conversation.messages] == ["user", "assistant"]


def test_each_turn_evaluates_only_new_tokens(hi) -> None:
    d = Driven(hi)
    d.run("one", "two", "three")
    result = d.repl.last_result
    prompt = d.chat.backend.template.render(d.conversation.messages[:-1])
    reused_before = len(prompt) - result.prompt_evaluated
    # everything up to the previous reply was in the cache
    previous = d.chat.backend.template.render(d.conversation.messages[:-3])
    assert reused_before == len(previous) + len(d.conversation.messages[-3].token_ids)


def test_help_lists_every_command(hi) -> None:
    out = Driven(hi).run("/help")
    for name in commands.COMMANDS:
        assert name in out


def test_unknown_command_and_bad_arguments_leave_the_conversation_alone(hi) -> None:
    d = Driven(hi)
    out = d.run("hello", "/bogus", "/set temperature hot", "/set nope 1", "/json maybe")
    assert "unknown command /bogus" in out
    assert "is not valid" in out and "usage: /set PARAM VALUE" in out and "usage: /json on|off" in out
    assert len(d.conversation.messages) == 2
    assert d.conversation.params.temperature == 0.8


def test_system_set_show_clear_and_prompt(hi) -> None:
    d = Driven(hi)
    out = d.run("/system Be brief.", "/system", "/prompt", "/system clear", "/system")
    assert "system prompt set" in out and "Be brief." in out
    assert "<|im_start|>system\nBe brief.<|im_end|>" in out
    assert "(no system prompt)" in out
    assert d.conversation.system is None


def test_set_and_params(hi) -> None:
    d = Driven(hi)
    out = d.run("/set temperature 0.3", "/set top_k 5", "/set max_tokens 9", "/set seed none",
                "/params")
    p = d.conversation.params
    assert (p.temperature, p.top_k, p.max_tokens, p.seed) == (0.3, 5, 9, None)
    assert "temperature = 0.3" in out and "top_k = 5" in out


def test_undo_retry_reset(hi) -> None:
    d = Driven(hi)
    d.run("a", "b", "/undo")
    assert [m.content for m in d.conversation.messages] == ["a", "Hi!"]
    first_id = d.conversation.id
    d.run("/retry")
    assert [m.content for m in d.conversation.messages] == ["a", "Hi!"]
    out = d.run("/reset")
    assert d.conversation.messages == [] and d.conversation.id != first_id
    assert "new conversation" in out


def test_a_reply_cut_by_max_tokens_is_kept_and_retry_replaces_it(load) -> None:
    engine = load("endless")
    d = Driven(engine, Conversation(params=SamplingParams(max_tokens=6)))
    d.run("go", "/retry")
    assert [m.content for m in d.conversation.messages] == ["go", "ababab"]


def test_ctrl_c_while_a_reply_is_shown_keeps_the_partial_reply(load, monkeypatch) -> None:
    """Ctrl-C lands while the terminal shows text (the usual moment): the view passes it
    back into the reply, which stops and keeps what was written; /retry replaces it."""
    from hermes_cli.chat.render import PlainRenderer

    shown: list[str] = []
    original = PlainRenderer.feed

    def feed(self, text: str) -> None:
        shown.append(text)
        if len(shown) == 10:
            raise KeyboardInterrupt
        original(self, text)

    monkeypatch.setattr(PlainRenderer, "feed", feed)
    d = Driven(load("endless"), Conversation(params=SamplingParams(max_tokens=4000)))
    out = d.run("go")
    assert "stopped; the partial reply is kept" in out
    kept = d.conversation.messages[1].content
    assert d.conversation.messages[1].role == "assistant" and 9 <= len(kept) < 4000
    assert kept == "ab" * (len(kept) // 2) + "a" * (len(kept) % 2)


def test_edit_resends_the_last_message(hi) -> None:
    d = Driven(hi)
    # /edit pre-fills the old text; Ctrl-U clears it, then the new text is typed
    d.run("first try", "/edit", "\x15second try")
    assert [m.content for m in d.conversation.messages] == ["second try", "Hi!"]


def test_save_json_and_markdown_then_load(hi, tmp_path: Path) -> None:
    d = Driven(hi)
    d.run("/system S", "hello", f"/save {tmp_path / 'c.json'}", f"/save {tmp_path / 'c.md'}")
    saved = json.loads((tmp_path / "c.json").read_text())
    assert [m["role"] for m in saved["messages"]] == ["system", "user", "assistant"]
    assert "## user\n\nhello" in (tmp_path / "c.md").read_text()
    e = Driven(hi)
    out = e.run(f"/load {tmp_path / 'c.json'}", "again")
    assert "loaded 2 messages" in out
    assert [m.content for m in e.conversation.messages] == ["hello", "Hi!", "again", "Hi!"]
    assert e.conversation.system == "S"


def test_load_rejects_a_bad_file(hi, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    out = Driven(hi).run(f"/load {bad}", f"/load {tmp_path / 'missing.json'}")
    assert "not a hermes conversation" in out and "no such file" in out


def test_copy_uses_osc52_without_a_clipboard_tool(hi, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no pbcopy, xclip, wl-copy...
    out = Driven(hi).run("hello", "/copy")
    assert "\x1b]52;c;SGkh\x07" in out  # base64("Hi!")
    assert "copied 3 characters (OSC 52)" in out


def test_stats_model_and_exit(hi) -> None:
    out = Driven(hi).run("/stats", "hello", "/stats", "/model", "/exit", "never sent")
    assert "no reply yet" in out and "reply 3 tokens" in out and "context 2048" in out
    assert "never sent" not in out


def test_json_and_schema_modes(load) -> None:
    d = Driven(load("random"), Conversation(params=SamplingParams(seed=3)))
    schema = ('{"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"], '
              '"additionalProperties": false}')
    out = d.run("/json on", "give json", f"/schema {schema}", "again", "/schema off", "/json")
    assert isinstance(json.loads(d.conversation.messages[1].content), dict)
    assert isinstance(json.loads(d.conversation.messages[3].content)["ok"], bool)
    assert "JSON mode off" in out


def test_bad_schema_is_one_line(hi) -> None:
    d = Driven(hi)
    out = d.run('/schema {"type": 3}')
    assert "error: /schema" not in out or "not a valid JSON Schema" in out
    assert "not a valid JSON Schema" in out and not d.conversation.json_mode


def test_tools_load_list_off(hi, tmp_path: Path) -> None:
    (tmp_path / "t.py").write_text("def add(a: int, b: int) -> int:\n    \"\"\"Add.\"\"\"\n    return a + b\n")
    d = Driven(hi)
    out = d.run("/tools", f"/tools {tmp_path / 't.py'}", "/tools list", "/prompt", "/tools off", "/tools")
    assert "no tools" in out and "add(a, b): Add." in out and "tools off" in out
    assert "<tools> {\"type\": \"function\"" in out


def test_context_full_compacts_old_turns_out_of_the_window_but_keeps_them_saved(load) -> None:
    """The window the model sees is a view (issue 21, row 3): the oldest turns become the
    model's note (issue 33: compaction), and the record keeps every turn, so export and
    history --grep still find the first question."""
    engine = load("hi", n_ctx=1024)
    d = Driven(engine, Conversation(system="SYSTEM PROMPT"))
    out = d.run(*[f"question number {i} " + "filler " * 40 for i in range(8)])
    assert "compacted: the " in out and d.conversation.compaction is not None
    assert d.conversation.system == "SYSTEM PROMPT"
    assert d.conversation.messages[-2].content.startswith("question number 7 ")
    assert [m.content.split(" filler")[0] for m in d.conversation.messages[::2]] == [
        f"question number {i}" for i in range(8)]
    assert sessions.load(d.conversation.id).messages[0].content.startswith("question number 0 ")
    assert "question number 0" not in engine.detokenize(engine.cached_tokens())  # not in what it saw last
    assert out.count("Hi!") == 8  # every turn was answered


def test_every_change_is_saved_and_can_be_resumed(hi) -> None:
    d = Driven(hi)
    d.run("remember me")
    saved = sessions.load(None)
    assert saved.id == d.conversation.id
    assert [m.content for m in saved.messages] == ["remember me", "Hi!"]
    assert saved.messages[1].token_ids == d.conversation.messages[1].token_ids
    listed = sessions.list_sessions()
    assert listed[-1].first_line == "remember me"


def test_a_full_disk_does_not_end_the_chat(hi, monkeypatch) -> None:
    def full(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sessions, "save", full)
    out = Driven(hi).run("hello", "again")
    assert "could not save the conversation: No space left on device" in out
    assert out.count("Hi!") == 2


def test_resume_restores_the_kv_state_so_history_is_not_re_evaluated(load) -> None:
    first = Driven(load("hi"))
    first.run(*[f"turn {i} " + "with some words " * 10 for i in range(5)])
    template = first.chat.backend.template
    context = template.render(first.conversation.messages[:-1]) + first.conversation.messages[-1].token_ids

    fresh = load("hi")  # a new process would load the model anew: empty KV cache
    assert fresh.cached_tokens() == []
    second = Driven(fresh, sessions.load(None))
    out = second.run("one more")
    assert f"{len(context)} tokens of saved state" in out
    result = second.repl.last_result
    assert result.prompt_reused == len(context)
    assert result.prompt_evaluated == result.prompt_tokens - len(context)


def test_a_state_from_another_context_size_is_discarded(load) -> None:
    Driven(load("hi")).run("hello " * 20)
    resumed = Driven(load("hi", n_ctx=1024), sessions.load(None))
    out = resumed.run("again")
    assert "tokens of saved state" not in out
    assert resumed.repl.last_result.prompt_reused == 0  # evaluated in full, correctly
    assert "Hi!" in out


def test_only_the_most_recent_sessions_keep_a_state(hi) -> None:
    for i in range(sessions.STATES_KEPT + 2):
        Driven(hi).run(f"conversation {i}")
    assert len(list(sessions.sessions_dir().glob("*.kv"))) == sessions.STATES_KEPT
    assert len(list(sessions.sessions_dir().glob("*.kvmeta"))) == sessions.STATES_KEPT
    assert len(sessions.list_sessions()) == sessions.STATES_KEPT + 2  # conversations all stay


def test_completion_of_commands_and_their_arguments(tmp_path: Path) -> None:
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document

    completer = completion.slash_completer()

    def complete(text: str) -> list[str]:
        return [c.text for c in completer.get_completions(Document(text, len(text)), CompleteEvent())]

    assert "/schema" in complete("/sch") and "/system" in complete("/s")
    assert complete("/json o") == ["on", "off"]
    assert complete("/set temp") == ["temperature"]
    (tmp_path / "schema_file.json").write_text("{}")
    assert complete(f"/schema {tmp_path}/sch") == ["ema_file.json"]  # the rest of the name
    assert complete("hello /") == []


def test_a_failing_turn_is_one_line_and_the_chat_goes_on(load, monkeypatch, tmp_path: Path) -> None:
    """llama.cpp failing mid-turn (any exception): one line, the next turn works, and
    the conversation is saved."""
    import hermes_cli.core.backends as backends

    real = backends.LocalBackend.start
    calls = []

    def start(self, messages, params, grammar):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("llama_decode failed")
        return real(self, messages, params, grammar)

    monkeypatch.setattr(backends.LocalBackend, "start", start)
    d = Driven(load("hi"))
    out = d.run("first", "second")
    assert "error: RuntimeError: llama_decode failed" in out and "Traceback" not in out
    # the message that got no reply is taken back (never kept without its reply)
    assert [m.content for m in d.conversation.messages] == ["second", "Hi!"]
    saved = sessions.load(d.conversation.id)
    assert [m.content for m in saved.messages] == ["second", "Hi!"]


def test_loading_a_session_with_a_bad_schema_is_one_line(load, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"messages": [], "settings": {"json_mode": True, "json_schema": {"type": "nope"}}}))
    d = Driven(load("hi"))
    out = d.run(f"/load {bad}", "hello")
    assert "error: the saved schema: not a valid JSON Schema" in out
    assert [m.content for m in d.conversation.messages] == ["hello", "Hi!"]


def test_retry_generates_the_reply_again_in_place(hi) -> None:
    """/retry once passed every REPL test while doing nothing (the test models answer the
    same again): the reply must be generated and shown a second time, replacing the first."""
    d = Driven(hi)
    out = d.run("hello", "/retry")
    assert out.count("Hi!\n") == 2 and out.count("3 tokens") == 2  # two generations, two footers
    assert [m.role for m in d.conversation.messages] == ["user", "assistant"]
    assert d.repl.last_result is not None and d.repl.last_result.text == "Hi!"


def test_chat_errors_name_the_slash_command_not_a_cli_flag(hi, tmp_path: Path) -> None:
    out = Driven(hi).run(f"/schema {tmp_path / 'nosuch.json'}", f"/tools {tmp_path / 'nope.py'}",
                         "/schema {not json")
    assert "error: /schema '" in out and "nosuch.json': no such file" in out
    assert f"error: /tools {tmp_path / 'nope.py'}: no such file" in out
    assert "error: /schema (inline)" in out
    assert "--schema" not in out and "--tools" not in out


def test_an_unrecognised_approval_answer_is_asked_again_not_taken_as_no(load, tmp_path: Path) -> None:
    (tmp_path / "t.py").write_text("def add(a: int, b: int) -> int:\n    \"\"\"Add.\"\"\"\n    return a + b\n")
    d = Driven(load("caller", n_ctx=8192))
    out = d.run(f"/tools {tmp_path / 't.py'}", "go", "maybe", "y")
    assert out.count("answer y (run it), n (do not) or a (always") == 1
    assert "← add" in out  # "y", typed after the unrecognised answer, ran it


def test_continue_goes_on_with_a_cut_reply_from_the_kv_state_there(load) -> None:
    """Issue 33, item 3: a reply cut by --max-tokens goes on where it stopped, as one
    reply; the prompt is the cache's prefix, so nothing but the last token is evaluated."""
    conv = Conversation(model="tiny", params=SamplingParams(max_tokens=5))
    d = Driven(load("endless", n_ctx=4096), conv)
    out = d.run("go", "/continue", "/continue")
    replies = [m for m in d.conversation.messages if m.role == "assistant"]
    assert len(replies) == 1 and replies[0].content == "ab" * 7 + "a"  # 3 × 5 tokens, one turn
    assert d.repl.last_result is not None and d.repl.last_result.prompt_evaluated <= 1
    assert out.count("5 tokens") == 3


def test_continue_without_a_reply_or_in_json_mode_says_why(hi) -> None:
    out = Driven(hi).run("/continue", "hello", "/json on", "/continue")
    assert "error: nothing to continue: the last message is not a reply" in out
    assert "error: /continue goes on with text replies" in out


@pytest.mark.parametrize("model", ["hi", "llama3_hi", "gemma_hi"])
def test_an_open_last_turn_renders_as_the_closed_one_without_its_end(load, model: str) -> None:
    from hermes_cli.prompt.messages import Message as Msg
    from hermes_cli.prompt.template import template_for

    engine = load(model)
    template = template_for(engine)
    closed = [Msg("user", "go"), Msg("assistant", "Hi there")]
    opened = [Msg("user", "go"), Msg("assistant", "Hi there", open=True)]
    whole = template.render(closed, add_generation_prompt=False)
    left_open = template.render(opened)
    assert whole[:len(left_open)] == left_open and len(left_open) < len(whole)
    assert engine.detokenize(left_open).endswith("Hi there")


class _Asked:
    """A keyboard that records each question it is asked (prompt_toolkit draws them on a
    DummyOutput here)."""

    def __init__(self, keyboard) -> None:
        self.keyboard, self.questions = keyboard, []

    def prompt(self, message: str = "", **kwargs):
        self.questions.append(message)
        return self.keyboard.prompt(message, **kwargs)


@pytest.mark.parametrize("terminal", [True, False])
def test_the_approval_question_names_the_call_only_where_the_line_above_does_not(
        tmp_path: Path, terminal: bool) -> None:
    """Issue 30: the question repeated the call line right above it. On a terminal a call
    shown whole on the line above is asked about by name; one shown cut (long arguments)
    or not shown on a terminal is asked about whole: the user sees what would run."""
    from tests.fake_backend import FakeBackend

    (tmp_path / "t.py").write_text("def echo(text: str) -> str:\n    \"\"\"Echo.\"\"\"\n    return text\n")
    long = "x" * 200

    def call(text: str) -> str:
        return f'<tool_call>\n{{"name": "echo", "arguments": {{"text": "{text}"}}}}\n</tool_call>'

    backend = FakeBackend(call("hi"), "Done.", call(long), "Done again.")
    console = Console(file=io.StringIO(), width=100, color_system=None, force_terminal=terminal)
    with create_pipe_input() as pipe:
        pipe.send_text(f"/tools {tmp_path / 't.py'}{ENTER}go{ENTER}y{ENTER}go{ENTER}y{ENTER}")
        pipe.close()
        keyboard = _Asked(PromptSession(input=pipe, output=DummyOutput(), history=InMemoryHistory()))
        repl = Repl(console=console, keyboard=keyboard, keyboard_is_terminal=True)
        assert repl.run(ChatSession(backend, Conversation(model="fake"), warn=repl.error, confirm=repl.confirm)) == 0
    asked = [q for q in keyboard.questions if "[y]es" in q]
    whole_hi = 'run echo({"text": "hi"})? [y]es/[n]o/[a]lways: '
    assert asked == [("run echo? [y]es/[n]o/[a]lways: " if terminal else whole_hi),
                     f'run echo({{"text": "{long}"}})? [y]es/[n]o/[a]lways: ']
    assert console.file.getvalue().count("← echo") == 2  # both ran
