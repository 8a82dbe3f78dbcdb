"""`hermes cmd`: one shell command, written under the grammar, run only on a terminal
answer. Driven as a user would: piped, and on a real pty (run, edit, copy, explain, quit)."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest

from tests import tinymodels as tm
from tests.test_chat_terminal import Terminal, env_for


def _writes(command: bytes) -> dict[int, int]:
    """A bigram model that answers `{"command": "<command>"}` under the command grammar:
    it opens the object, the grammar forces `"command": "`, the model writes the command
    after that quote, and the grammar closes it (the command's bytes must be unique and
    hold no `"`)."""
    b = tm.byte_token
    table = {b(0x0A): b(ord("{")), b(ord('"')): b(command[0])}
    table.update({b(x): b(y) for x, y in zip(command, command[1:])})
    table[b(command[-1])] = b(ord('"'))
    table[b(ord("}"))] = tm.token_id("<|im_end|>")
    return table


@pytest.fixture(scope="module")
def exiter(tmp_path_factory) -> Path:
    """Writes the command `exit 3`: harmless to run, and its status says it ran."""
    return tm.write_model(tmp_path_factory.mktemp("cmd") / "exiter.gguf", kind="bigram",
                          bigram=_writes(b"exit 3"))


def test_the_command_is_written_for_this_machines_shell_and_os(monkeypatch) -> None:
    from hermes_cli.core.shell_command import COMMAND_SCHEMA, Machine, command_logic, system_prompt
    from hermes_cli.engine.params import SamplingParams

    machine = Machine("Linux (Debian GNU/Linux 12)", "/usr/bin/fish", "/srv/data")
    prompt = system_prompt(machine)
    assert "fish (/usr/bin/fish) on Linux (Debian GNU/Linux 12), in the folder /srv/data" in prompt
    request = next(command_logic("list big files", machine, SamplingParams()))
    assert json.loads(request.grammar.server_schema and json.dumps(request.grammar.server_schema)) == COMMAND_SCHEMA
    assert request.messages[0].content.endswith(prompt) and request.messages[1].content == "list big files"


def test_piped_the_command_is_printed_and_never_run(hermes_exe, exiter) -> None:
    proc = subprocess.run([*hermes_exe, "cmd", "-m", str(exiter), "leave", "with", "three"], input="r\n",
                          capture_output=True, text=True, timeout=60, start_new_session=True)
    assert (proc.returncode, proc.stdout) == (0, "exit 3\n"), proc.stderr  # run, it would have ended 3


def test_without_a_request_it_says_what_to_give(hermes_exe, exiter) -> None:
    proc = subprocess.run([*hermes_exe, "cmd", "-m", str(exiter)], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and "say what the command should do" in proc.stderr


def _term(hermes_exe, exiter, tmp_path) -> Terminal:
    term = Terminal([*hermes_exe, "cmd", "-m", str(exiter), "--max-tokens", "40", "leave with three"],
                    env_for(tmp_path))
    term.expect(r"exit 3[\s\S]*\[r\]un")
    return term


def test_run_on_a_terminal_runs_it_in_the_users_shell_with_its_exit_status(hermes_exe, exiter, tmp_path) -> None:
    term = _term(hermes_exe, exiter, tmp_path)
    term.send("r\r")
    assert term.wait() == 3


def test_edit_prefills_the_command_and_runs_the_edited_one(hermes_exe, exiter, tmp_path) -> None:
    term = _term(hermes_exe, exiter, tmp_path)
    term.send("e\r")
    term.expect(r"edit> exit 3")
    term.send("\x7f4\r")  # backspace, 4, Enter
    term.expect(r"exit 4[\s\S]*\[r\]un")
    term.send("r\r")
    assert term.wait() == 4


def test_quit_runs_nothing_and_exits_1(hermes_exe, exiter, tmp_path) -> None:
    term = _term(hermes_exe, exiter, tmp_path)
    term.send("\r")  # no choice: asked again, nothing run
    term.expect(r"\[r\]un[\s\S]*\[r\]un")
    term.send("q\r")
    term.expect("not run")
    assert term.wait() == 1


def test_explain_streams_an_explanation_then_asks_again(hermes_exe, exiter, tmp_path) -> None:
    term = _term(hermes_exe, exiter, tmp_path)
    asked = term.text().count("[r]un")
    term.send("x\r")
    term.expect(r"(\[r\]un[\s\S]*){" + str(asked + 1) + "}")
    term.send("q\r")
    assert term.wait() == 1


def test_copy_puts_the_command_on_the_clipboard(hermes_exe, exiter, tmp_path) -> None:
    term = _term(hermes_exe, exiter, tmp_path)
    term.send("c\r")
    term.expect(r"copied \((OSC 52|pbcopy|wl-copy|xclip|xsel|clip.exe)\)")
    assert term.wait() == 0
    if "copied (OSC 52)" in term.text():  # no clipboard tool here: the terminal is told
        assert b"\x1b]52;c;" + base64.b64encode(b"exit 3") + b"\x07" in term.raw
