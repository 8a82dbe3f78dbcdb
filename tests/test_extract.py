"""Issue 33, item 6: `ask -x` prints only the first fenced code block of the answer (and
stops the model once the block closes); `/copy code` copies it in chat."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from hermes_cli.core.extract import CodeExtractor, first_code_block
from tests.scripted_server import EndlessServer

CODE = "find . -size +100M\nls -l | wc -l\n"
ANSWER = "Here is the script:\n\n```bash\nfind . -size +100M\nls -l | wc -l\n```\n\nIt lists big files.\n"


def ask(exe: list[str], url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*exe, "ask", "x", "--endpoint", url, "--model", "m", *args], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL, start_new_session=True)


def test_ask_x_prints_the_code_alone(hermes_exe) -> None:
    with EndlessServer(reply=ANSWER, pace=0.001, chunk=3) as server:
        proc = ask(hermes_exe, server.url, "-x")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == CODE


def test_ask_x_stops_the_model_once_the_block_closes(hermes_exe) -> None:
    """After the block, a model that would go on for thousands of tokens is not waited for."""
    with EndlessServer(reply="```\necho hi\n```\n" + "and more " * 20000, pace=0.001, chunk=4) as server:
        proc = ask(hermes_exe, server.url, "-x", "--max-tokens", "100000")
        sent = server.events_sent
    assert proc.returncode == 0 and proc.stdout == "echo hi\n", proc.stderr
    assert sent < 5000, f"{sent} of 45,000 events were read: the request was not stopped"


def test_ask_x_without_a_block_is_exit_6_and_prints_nothing(hermes_exe) -> None:
    with EndlessServer(reply="No code here, sorry.") as server:
        proc = ask(hermes_exe, server.url, "-x")
    assert proc.returncode == 6 and proc.stdout == ""
    assert "no fenced code block" in proc.stderr


def test_ask_x_with_a_schema_is_a_usage_error(hermes_exe, models) -> None:
    proc = subprocess.run([*hermes_exe, "ask", "x", "-m", str(models["hi"]), "-x", "--json"], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and "--extract" in proc.stderr


def test_copy_code_in_chat_copies_the_first_block(hermes_exe, tmp_path: Path) -> None:
    env = {**os.environ, "HERMES_DATA_DIR": str(tmp_path / "data"), "PATH": "/nonexistent"}  # no clipboard tool
    with EndlessServer(reply=ANSWER) as server:
        proc = subprocess.run([*hermes_exe, "chat", "--endpoint", server.url, "--model", "m"],
                              input="go\n/copy code\n/copy nothing\n", capture_output=True, text=True, timeout=60,
                              env=env, start_new_session=True)
    assert proc.returncode == 0, proc.stderr
    assert f"copied {len(CODE)} characters of code" in proc.stdout
    assert "usage: /copy, or /copy code" in proc.stdout + proc.stderr


@settings(max_examples=200, deadline=None)
@given(before=st.text(alphabet=st.sampled_from("ab `~\n"), max_size=20),
       code=st.text(alphabet=st.sampled_from("xy `~\n"), max_size=30),
       cuts=st.lists(st.integers(0, 100), max_size=8))
def test_streamed_extraction_equals_the_whole_answers(before, code, cuts) -> None:
    text = f"{before}\n```\n{code}\n```\nafter"
    points = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    extractor, got = CodeExtractor(), ""
    for a, b in zip(points, points[1:]):
        got += extractor.feed(text[a:b])
    got += extractor.finish()
    assert got == (first_code_block(text) or "")
