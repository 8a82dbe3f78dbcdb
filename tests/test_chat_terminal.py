"""`hermes chat` in a real pseudo-terminal, typed at as a user would."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import children
from tests import tinymodels as tm

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[=>]|\r")


class Terminal:
    """A child process on a pty; `expect` reads until a pattern shows up (no sleeps)."""

    def __init__(self, argv: list[str], env: dict[str, str], rows: int = 30, cols: int = 100,
                 preexec: Callable[[], None] | None = None) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            if preexec is not None:
                preexec()
            os.execve(argv[0], argv, env)
        children.RUNNING.append(self.pid)  # ended by conftest if the test does not
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.raw = b""

    def text(self) -> str:
        return ANSI.sub("", self.raw.decode("utf-8", errors="replace"))

    def expect(self, pattern: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.text()):
            left = deadline - time.monotonic()
            assert left > 0, f"timed out waiting for {pattern!r}; screen so far:\n{self.text()[-2000:]}"
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    chunk = b""
                assert chunk, f"the program ended before {pattern!r}:\n{self.text()[-2000:]}"
                self.raw += chunk
        return self.text()

    def more(self, nbytes: int, timeout: float = 60) -> None:
        """Read until `nbytes` more bytes came (a reply that goes on streaming)."""
        target = len(self.raw) + nbytes
        deadline = time.monotonic() + timeout
        while len(self.raw) < target:
            left = deadline - time.monotonic()
            assert left > 0, f"no more output; screen so far:\n{self.text()[-2000:]}"
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                chunk = os.read(self.fd, 65536)
                assert chunk, "the program ended"
                self.raw += chunk

    def settle(self, quiet: float = 0.3, timeout: float = 30) -> None:
        """Read until the program has drawn nothing for `quiet` seconds (a redraw is done)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], quiet)
            if not ready:
                return
            self.raw += os.read(self.fd, 65536)

    def send(self, data: str) -> None:
        os.write(self.fd, data.encode())

    def wait(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            ready, _, _ = select.select([self.fd], [], [], 0.5)
            if ready:
                try:
                    self.raw += os.read(self.fd, 65536)
                except OSError:
                    pass
        raise AssertionError("the program did not exit")


def env_for(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    # This pty does not answer cursor-position requests; tell prompt_toolkit so.
    env.update(TERM="xterm-256color", HERMES_DATA_DIR=str(tmp_path / "data"), COLUMNS="100",
               LINES="30", PROMPT_TOOLKIT_NO_CPR="1")
    return env


def test_type_stream_interrupt_type_again_exit(hermes_exe, models, tmp_path: Path) -> None:
    term = Terminal([*hermes_exe, "chat", "-m", str(models["endless"]), "--ctx", "0"],
                    env_for(tmp_path))
    term.expect(r"Ctrl-D to quit")
    term.expect(r"(^|\n)>")
    term.send("go\r")
    term.expect(r"(ab){20}")  # it is streaming
    term.send("\x03")  # Ctrl-C mid-reply
    term.expect(r"stopped; the partial reply is kept")
    term.expect(r"tokens · [0-9.]+ tok/s · context \d+/32768[^\n]*\n[\s\S]*>")  # prompt back
    term.send("/undo\r")
    term.expect(r"dropped the last exchange \(2 messages\)")
    term.send("/exit\r")
    assert term.wait() == 0
    saved = sorted((tmp_path / "data" / "sessions").glob("*.json"))
    assert len(saved) == 1


def test_markdown_reply_on_a_terminal_and_continue(hermes_exe, models, tmp_path: Path) -> None:
    env = env_for(tmp_path)
    term = Terminal([*hermes_exe, "chat", "-m", str(models["hi"])], env)
    term.expect(r"(^|\n)>")
    term.send("first question\r")
    term.expect(r"Hi!")
    term.expect(r"3 tokens[^\n]*\n[\s\S]*>")  # the prompt is back
    term.send("\x04")  # Ctrl-D quits
    assert term.wait() == 0

    history = subprocess.run([*hermes_exe, "history"], env=env, capture_output=True, text=True,
                             timeout=60)
    assert "first question" in history.stdout and "2 messages" in history.stdout
    term = Terminal([*hermes_exe, "chat", "--continue", "-m", str(models["hi"])], env)
    term.expect(r"resumed conversation .* \(2 messages, \d+ tokens of saved state\)")
    term.send("/prompt\r")
    term.expect(r"user\s*first question")
    term.send("/exit\r")
    assert term.wait() == 0


def test_ctrl_c_at_the_prompt_clears_the_line(hermes_exe, models, tmp_path: Path) -> None:
    term = Terminal([*hermes_exe, "chat", "-m", str(models["hi"])], env_for(tmp_path))
    term.expect(r"(^|\n)>")
    term.send("half a thought")
    term.expect(r"half a thought")
    term.send("\x03")
    term.send("/stats\r")
    term.expect(r"no reply yet")
    term.send("/exit\r")
    assert term.wait() == 0


def test_json_reply_streams_and_ctrl_c_keeps_the_partial_json(hermes_exe, models, tmp_path: Path) -> None:
    """"endless" writes "abab…" forever; a string of "ab"s is what the schema allows, so
    the reply streams (in the transient area) until Ctrl-C, which keeps the partial JSON."""
    term = Terminal([*hermes_exe, "chat", "-m", str(models["endless"]), "--ctx", "0"],
                    env_for(tmp_path))
    term.expect(r"(^|\n)>")
    term.send('/schema {"type": "object", "properties": {"s": {"type": "string", "pattern": "^(ab)+$"}}, '
              '"required": ["s"]}\r')
    term.expect(r"JSON mode on")
    term.send("go\r")
    term.expect(r'\{')  # the JSON text, as it is written...
    term.expect(r"(ab){40}")  # ...its newest rows while it streams
    term.send("\x03")
    term.expect(r"stopped; the partial reply is kept")
    term.expect(r"tokens · [0-9.]+ tok/s[^\n]*\n[\s\S]*>")
    term.send("/exit\r")
    assert term.wait() == 0
    saved = sorted((tmp_path / "data" / "sessions").glob("*.json"))
    messages = json.loads(saved[0].read_text())["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[1]["content"].startswith('{') and "abab" in messages[1]["content"]


def chat_with_add_tool(hermes_exe: list[str], model: Path, ctx: str, tmp_path: Path) -> Terminal:
    """A chat on `model` with a one-function tools file (`add`) loaded, at the prompt."""
    (tmp_path / "t.py").write_text("def add(a: int, b: int) -> int:\n    \"\"\"Add.\"\"\"\n    return a + b\n")
    term = Terminal([*hermes_exe, "chat", "-m", str(model), "--ctx", ctx], env_for(tmp_path))
    term.expect(r"(^|\n)>")
    term.send(f"/tools {tmp_path / 't.py'}\r")
    term.expect(r"tools: add")
    return term


def test_tool_calls_show_as_made_with_approval_and_results(hermes_exe, models, tmp_path: Path) -> None:
    """"caller" opens a call after every assistant header: each is shown, asked about,
    run, and its result shown, until the round limit."""
    term = chat_with_add_tool(hermes_exe, models["caller"], "8192", tmp_path)
    term.send("go\r")
    term.expect(r"→ add \{\"a\": -?\d+")
    term.expect(r"→ add \{[^\n]*\}\s*\n\s*run add\? \[y\]es/\[n\]o/\[a\]lways:")  # the call, then the question by name
    term.send("a\r")
    term.expect(r"← add -?\d+")
    term.expect(r"stopped after 5 tool rounds")
    term.send("/exit\r")
    assert term.wait() == 0


def test_ctrl_c_in_tool_mode_keeps_the_streamed_text(hermes_exe, models, tmp_path: Path) -> None:
    term = chat_with_add_tool(hermes_exe, models["endless"], "0", tmp_path)
    term.send("go\r")
    term.expect(r"(ab){20}")
    term.send("\x03")
    term.expect(r"stopped; the partial reply is kept")
    term.send("/exit\r")
    assert term.wait() == 0
    saved = sorted((tmp_path / "data" / "sessions").glob("*.json"))
    messages = json.loads(saved[0].read_text())["messages"]
    assert messages[-1]["role"] == "assistant" and messages[-1]["content"].startswith("abab")


def test_files_completion_branches_role_and_model_in_a_real_terminal(hermes_exe, models, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes-for-hermes.txt").write_text("remember the milk\n")
    config = tmp_path / "config.toml"
    config.write_text('[roles.terse]\nsystem = "One word."\n')
    env = {**env_for(tmp_path), "HERMES_CONFIG": str(config)}
    term = Terminal([*hermes_exe, "chat", "-m", str(models["hi"])], env, preexec=lambda: os.chdir(work))
    term.expect(r"(^|\n)>")
    term.send("summarize @notes-f")
    term.expect(r"notes-for-hermes\.txt")  # offered as you type
    term.send("\t\r")  # Tab takes it (the message then names the whole file), Enter sends
    term.expect(r"with notes-for-hermes\.txt \(\d+ tokens\) · prompt \d+ of 2,048 tokens")
    term.expect(r"Hi!")
    term.expect(r"tokens · [^\n]*\n[\s\S]*>")
    term.send("/read notes-for-hermes.txt\r")
    term.expect(r"attached notes-for-hermes\.txt \(\d+ tokens\)")
    term.send("/fork\r")
    term.expect(r"branch 1: a copy of the conversation so far")
    term.send("second\r")
    term.expect(r"Hi![\s\S]*tokens · [\s\S]*Hi![\s\S]*tokens · [^\n]*\n[\s\S]*>")
    term.send("/branch 0\r")
    term.expect(r"on branch 0: 2 messages")
    term.send("/role terse\r")
    term.expect(r"role terse: system prompt")
    term.send(f"/model {models['gemma_hi']}\r")
    term.expect(r"loaded gemma_hi\.gguf; the conversation \(2 messages\) goes on with it")
    term.send("again\r")
    term.expect(r"Hi![\s\S]*Hi![\s\S]*Hi!")
    term.send("/exit\r")
    assert term.wait() == 0
    saved = json.loads(next((tmp_path / "data" / "sessions").glob("*.json")).read_text())
    assert len(saved["branches"]) == 2 and saved["current"] == 0
    assert saved["messages"][0]["content"] == "One word."  # the role's system prompt
    assert "remember the milk" in saved["messages"][1]["content"]
    assert "remember the milk" in saved["branches"][1]["messages"][2]["content"]  # /read went with "second"


def test_chat_continue_max_tokens_on_the_command_line_beats_the_saved_setting(hermes_exe, models,
                                                                              tmp_path: Path) -> None:
    env = env_for(tmp_path)
    term = Terminal([*hermes_exe, "chat", "-m", str(models["endless"]), "--max-tokens", "40"], env)
    term.expect(r"(^|\n)>")
    term.send("go\r")
    term.expect(r"40 tokens · ")
    term.send("/exit\r")
    assert term.wait() == 0
    term = Terminal([*hermes_exe, "chat", "--continue", "--max-tokens", "3"], env)
    term.expect(r"resumed conversation")
    term.send("again\r")
    term.expect(r"\n3 tokens · ")
    term.send("/params\r")
    term.expect(r"max_tokens = 3")
    term.send("/exit\r")
    assert term.wait() == 0


def _screen(raw: bytes, rows: int = 30, cols: int = 100) -> list[str]:
    """What the terminal shows, scrollback included, as a VT100 screen renders the bytes."""
    import pyte

    screen = pyte.HistoryScreen(cols, rows, history=5000)
    stream = pyte.ByteStream(screen)
    stream.feed(raw)
    above = ["".join(line[x].data for x in range(cols)) for line in screen.history.top]
    return [line.rstrip() for line in above + screen.display]


def _paragraphs_model(tmp_path: Path) -> Path:
    """Writes "ba", a blank line, "ba", ... forever (a bigram cycle a → \\n\\n → b → a)."""
    a, b, blank = tm.byte_token(ord("a")), tm.byte_token(ord("b")), tm.token_id("ĊĊ")
    return tm.write_model(tmp_path / "paras.gguf", kind="bigram",
                          bigram={tm.byte_token(0x0A): b, b: a, a: blank, blank: b}, context_length=8192)


def test_paragraphs_keep_their_blank_line_and_typing_while_streaming_prints_nothing_twice(
        hermes_exe, tmp_path: Path) -> None:
    """Issue 21, row 14, as a screen (pyte) shows it: 1,000 paragraphs streamed while the
    user types ahead, Enter included; each is on screen once, one blank line between, no
    echoed key in the reply, and what was typed waits whole at the next prompt. (An
    echoed Enter moved the cursor under the live area, whose top line then stayed on
    screen: printed twice.)"""
    model = _paragraphs_model(tmp_path)
    term = Terminal([*hermes_exe, "chat", "-m", str(model), "--max-tokens", "3000"], env_for(tmp_path))
    term.expect(r"Ctrl-D to quit")
    term.expect(r"(^|\n)>")
    term.send("go\r")
    term.expect(r"(ba\s+){5}")  # streaming
    snapshots = []
    for keys in ("\r", "\r", "\r", "zz", "zz"):  # a hurried user types ahead, Enter too
        term.send(keys)
        term.expect(r"(ba\s+){3}")
        snapshots.append(_screen(term.raw))
    term.expect(r"tokens · [0-9.]+ tok/s")
    for shot in snapshots:  # mid-stream: the paragraph being written sits under a blank line
        lines = [line for line in shot if line.strip()] and shot[:max(i for i, x in enumerate(shot) if x.strip()) + 1]
        assert "tok/s" not in "\n".join(lines), "the reply ended before the check: make it longer"
        assert lines[-1] in ("b", "ba") and lines[-2] == "", lines[-6:]
    term.expect(r"zzzz")  # what was typed waits at the next prompt, whole
    shown = _screen(term.raw)
    first = shown.index("ba")
    last = max(i for i, line in enumerate(shown) if line == "ba")
    reply = shown[first:last + 1]
    assert set(reply) <= {"ba", ""}, [x for x in reply if x not in ("ba", "")][:5]  # no echoed keys inside
    assert all(x != y for x, y in zip(reply, reply[1:])), reply  # each paragraph, then one blank line
    assert reply.count("ba") == 1000  # 3000 tokens: 1000 paragraphs, none printed twice
    term.send("\x15/exit\r")  # Ctrl-U clears the typed-ahead line
    assert term.wait() == 0


# -- issue 30: what a real terminal shows ---------------------------------------------------------

def test_keys_typed_ahead_wait_at_the_prompt_after_ctrl_c_stops_the_reply(hermes_exe, models, tmp_path: Path) -> None:
    """The tty flushed its input queue on Ctrl-C (no NOFLSH): `/stats` Enter typed while
    the reply streamed was lost when the reply was then stopped."""
    term = Terminal([*hermes_exe, "chat", "-m", str(models["endless"]), "--ctx", "0"], env_for(tmp_path))
    term.expect(r"(^|\n)>")
    term.send("go\r")
    term.expect(r"(ab){20}")
    term.send("/stats\r")  # typed ahead, not echoed
    term.more(4000)  # the reply goes on
    term.send("\x03")
    term.expect(r"stopped; the partial reply is kept")
    term.expect(r"this session: \d+ tokens generated")  # the typed-ahead command ran
    term.send("/exit\r")
    assert term.wait() == 0


def _served_chat(hermes_exe: list[str], tmp_path: Path, server) -> Terminal:
    term = Terminal([*hermes_exe, "chat", "--endpoint", server.url, "--model", "m"], env_for(tmp_path))
    term.expect(r"(^|\n)>")
    term.send("go\r")
    return term


def test_a_last_block_taller_than_the_window_leaves_the_prompt_at_the_bottom(hermes_exe, tmp_path: Path) -> None:
    """Rich's Live drew its stale tall frame under the printed block, then erased it: the
    screen ended with the footer and prompt on its top rows and the rest blank."""
    from tests.scripted_server import EndlessServer

    code = "```python\n" + "\n".join(f"line_{i} = {i}" for i in range(60)) + "\n```"
    with EndlessServer(reply=code, pace=0.002, chunk=9) as server:
        term = _served_chat(hermes_exe, tmp_path, server)
        term.expect(r"tok/s[^\n]*\n[\s\S]*>")
        shown = _screen(term.raw)
        term.send("/exit\r")
        assert term.wait() == 0
    screen = shown[-30:]
    prompt_row = max(i for i, line in enumerate(screen) if line.startswith(">"))
    assert prompt_row >= 18, screen  # under the reply's last lines (the rest: the completion menu's room)
    footer = prompt_row - 1
    assert "tok/s" in screen[footer], screen
    assert "(stream events)" in screen[footer]  # this server sends no usage: the count is an estimate, and says so
    assert "line_59 = 59" in [line.strip() for line in screen[footer - 3:footer]], screen  # the reply's end above it
    lines = [line.strip() for line in shown if line.strip().startswith("line_")]
    assert lines == [f"line_{i} = {i}" for i in range(60)]  # each once, in order


def test_a_long_run_without_spaces_shows_while_it_streams(hermes_exe, tmp_path: Path) -> None:
    """The live area cut a long block at a word boundary, and a run with no space (base64,
    a URL, a model repeating itself) had none: nothing showed until the reply ended."""
    from tests.scripted_server import EndlessServer

    with EndlessServer(reply="xyz" * 6000, pace=0.002, chunk=6) as server:
        term = _served_chat(hermes_exe, tmp_path, server)
        term.expect(r"(xyz){30}")
        term.more(100_000)  # well past a screenful (27 rows of 100): the live area must cut the run
        assert "tok/s" not in term.text(), "the reply ended before the check: make it longer"
        assert sum(1 for line in _screen(term.raw)[-30:] if "xyzxyz" in line) >= 20
        term.expect(r"tok/s[^\n]*\n[\s\S]*>", timeout=120)
        term.send("/exit\r")
        assert term.wait() == 0
    run = [line for line in _screen(term.raw) if line and set(line) <= set("xyz")]
    assert sum(map(len, run)) == 18_000  # shown whole and once at the end


def test_one_tab_on_a_single_match_completes_it_and_closes_the_menu(hermes_exe, models, tmp_path: Path) -> None:
    term = Terminal([*hermes_exe, "chat", "-m", str(models["hi"])], env_for(tmp_path))
    term.expect(r"(^|\n)>")
    term.send("/sys")
    term.expect(r"/system")  # the menu that typing opens, one entry
    term.send("\t")
    term.settle()
    screen = _screen(term.raw)
    row = max(i for i, line in enumerate(screen) if line.startswith("> "))
    assert screen[row] == "> /system" and "/system" not in "".join(screen[row + 1:]), screen[row:row + 4]
    term.send(" Be brief.\r")
    term.expect(r"system prompt")
    term.send("/exit\r")
    assert term.wait() == 0


def test_help_wraps_at_words_with_a_hanging_indent_on_a_narrow_terminal(hermes_exe, models, tmp_path: Path) -> None:
    from hermes_cli.chat.commands import COMMANDS

    env = {**env_for(tmp_path), "COLUMNS": "60"}
    term = Terminal([*hermes_exe, "chat", "-m", str(models["hi"])], env, cols=60)
    term.expect(r"(^|\n)>")
    term.send("/help\r")
    term.expect(r"Ctrl-D quits")
    screen = _screen(term.raw, cols=60)
    term.send("/exit\r")
    assert term.wait() == 0
    words = {w for line in screen for w in line.split()}
    for c in COMMANDS.values():  # every word of every help line is on screen whole
        missing = [w for w in c.help.split() if w not in words]
        assert missing == [], (c.usage, missing)
    width = max(len(c.usage) for c in COMMANDS.values())
    continued = [line for line in screen if line.startswith(" " * (width + 2)) and line.strip()]
    assert continued, "no help line was long enough to wrap at 60 columns"


@pytest.mark.parametrize("exported", [False, True])
def test_narrowing_a_truncating_terminal_while_a_paragraph_streams_shows_no_word_twice(
        hermes_exe, tmp_path: Path, exported: bool) -> None:
    """Issue 30, finding 1: narrowing the window mid-reply left the streaming paragraph in
    scrollback twice (cut mid-word, then whole). The window here is a pty resized from 100
    to 50 columns (the kernel sends SIGWINCH), read by a screen that is resized at the same
    byte and cuts its rows to the new width (pyte, like xterm: no reflow, so what remains is
    the program's doing): no numbered word of the paragraph is on screen twice, they stay
    in order, and a word is missing only where the terminal cut a row on display at the
    resize (as it cuts all it printed before). `exported`:
    the shell exports COLUMNS=100 and LINES=30 (rich took them as a fixed size: 479 words
    doubled). A reflowing terminal: the tmux test below."""
    import fcntl
    import struct
    import termios

    import pyte

    from tests.scripted_server import EndlessServer

    words = [f"w{i:04d}" for i in range(700)]
    env = {k: v for k, v in env_for(tmp_path).items() if exported or k not in ("COLUMNS", "LINES")}
    with EndlessServer(reply=" ".join(words) + "\n\nEND", pace=0.004, chunk=6) as server:
        term = Terminal([*hermes_exe, "chat", "--endpoint", server.url, "--model", "m"], env)
        term.expect(r"(^|\n)>")
        term.send("go\r")
        term.expect(r"w0150")  # mid-paragraph
        cut = len(term.raw)
        before = _screen(term.raw)
        on_display = set(re.findall(r"w\d{4}", " ".join(before[-30:])))
        fcntl.ioctl(term.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 50, 0, 0))
        term.expect(r"tok/s[^\n]*\n[\s\S]*>", timeout=120)
        term.send("/exit\r")
        assert term.wait() == 0
    screen = pyte.HistoryScreen(100, 30, history=20000)
    stream = pyte.ByteStream(screen)
    stream.feed(term.raw[:cut])
    screen.resize(30, 50)
    stream.feed(term.raw[cut:])
    rows = ["".join(line[x].data for x in sorted(line)) for line in screen.history.top] + list(screen.display)
    seen = re.findall(r"w\d{4}", " ".join(rows))
    doubled = sorted({w for w in seen if seen.count(w) > 1})
    assert not doubled, f"{len(doubled)} words shown twice: {doubled[:10]}"
    assert seen == sorted(seen), "in order"
    assert set(words) - set(seen) <= on_display, "words are missing only where the terminal cut its rows"
    assert words[-1] in seen


def _tmux(sock: Path, *args: str) -> str:
    return subprocess.run(["tmux", "-S", str(sock), *args], capture_output=True, text=True, timeout=30).stdout


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
@pytest.mark.parametrize(("kind", "widths"), [("paragraph", [50]), ("paragraph", [25]),
                                              ("paragraph", [50, 30, 80]), ("code", [40]), ("thinking", [50])])
def test_narrowing_a_reflowing_terminal_while_a_block_streams_leaves_every_word_once(
        hermes_exe, tmp_path: Path, kind: str, widths: list[int]) -> None:
    """Issue 30, finding 1, on a terminal that reflows (tmux): narrowing keeps the bottom
    of the screen in place and pushes rows above into scrollback, as many as the lines
    below them gained, so a live area of 27 rows (a paragraph streaming) lost its top
    rows there, out of reach, and they were shown twice (64 words at 100 → 50 columns).
    The live area stays a few rows tall now (its head printed as it streams). A reasoning
    model's thinking is shown while it streams (its newest rows), then folded to one line:
    none of it may be left on screen. Left: an area closer to the screen's top than the
    lines its rows gain (the start of the first reply on a cleared screen, narrowed to
    half) can still leave a row there; the thinking case starts below a screenful."""
    from tests.scripted_server import EndlessServer

    count = 300 if kind == "code" else 700
    thinking = None
    if kind == "paragraph":
        reply = " ".join(f"w{i}" for i in range(count))
    elif kind == "code":  # code lines of up to 80 columns, each numbered once
        reply = "```\n" + "\n".join(f"w{i} = {i}  # " + "x" * (i % 60) for i in range(count)) + "\n```"
    else:
        thinking, reply = " ".join(f"w{i}" for i in range(count)), "The answer."
    sock = tmp_path / "tmux.sock"
    conf = tmp_path / "tmux.conf"
    conf.write_text("set -g history-limit 50000\nset -g status off\n")
    env = {k: v for k, v in env_for(tmp_path).items() if k not in ("COLUMNS", "LINES", "TMUX")}
    with EndlessServer(reply=reply, reasoning=thinking, pace=0.004, chunk=3) as server:
        command = f"{' '.join(hermes_exe)} chat --endpoint {server.url} --model m; sleep 600"
        subprocess.run(["tmux", "-S", str(sock), "-f", str(conf), "new-session", "-d", "-x", "100", "-y", "30",
                        "-s", "t", command], env=env, check=True, timeout=30)
        try:
            def wait_for(pattern: str, timeout: float = 60) -> str:
                deadline = time.monotonic() + timeout
                while True:
                    shown = _tmux(sock, "capture-pane", "-p", "-t", "t")
                    if re.search(pattern, shown):
                        return shown
                    assert time.monotonic() < deadline, f"timed out waiting for {pattern!r}:\n{shown}"
                    time.sleep(0.03)

            wait_for(r"(^|\n)>")
            if thinking is not None:  # a screen filled by earlier output (see the docstring)
                _tmux(sock, "send-keys", "-t", "t", "/help", "Enter")
                wait_for(r"/exit[\s\S]*\n>")
            _tmux(sock, "send-keys", "-t", "t", "go", "Enter")
            for k, width in enumerate(widths):
                shown = wait_for(rf"\bw{(600 if thinking else 100) + 60 * k}\b")  # (thinking: a screenful on)
                assert "tok/s" not in shown, "the reply ended before the resize: make it longer"
                _tmux(sock, "resize-window", "-t", "t", "-x", str(width))
            wait_for(r"tok/s", timeout=180)
            full = _tmux(sock, "capture-pane", "-p", "-J", "-S", "-50000", "-t", "t")
        finally:
            _tmux(sock, "kill-server")
    seen = re.findall(r"\bw(\d+)\b", full)
    if thinking is not None:
        assert "thought: 700 words" in full and "The answer." in full
        assert not seen, f"{len(seen)} words of the thinking left on screen: {seen[:10]}"
        return
    counts = {int(n): seen.count(n) for n in set(seen)}
    doubled = sorted(n for n, c in counts.items() if c > 1)
    assert not doubled, f"{len(doubled)} words shown twice: {doubled[:10]}"
    assert sorted(counts) == list(range(count)), "every word, once"
