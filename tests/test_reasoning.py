"""Issue 31, item 3 (first part): a reasoning model's `<think>` section is kept apart from
its answer — never printed as the answer by `ask`, never the `output` of a batch record,
folded in chat — and a served engine's `reasoning_content` is treated the same way."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hermes_cli.prompt.reasoning import ThinkSplitter, split_reasoning
from tests import tinymodels as tm
from tests.scripted_server import EndlessServer

THINK_TOKENS = (*tm.USER_TOKENS, "<think>", "</think>")


@pytest.fixture(scope="module")
def thinker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Writes `<think>why</think>OK` after every assistant header (the tags are single
    added tokens, as in Qwen3's vocabulary), then ends its turn."""
    vocab = tm.vocabulary(THINK_TOKENS)
    open_, close, end = vocab.index("<think>"), vocab.index("</think>"), vocab.index("<|im_end|>")
    b = tm.byte_token
    steps = [b(0x0A), open_, b(ord("w")), b(ord("h")), b(ord("y")), close, b(ord("O")), b(ord("K")), end]
    table = dict(zip(steps, steps[1:]))
    return tm.write_model(tmp_path_factory.mktemp("think") / "thinker.gguf", kind="bigram", bigram=table,
                          user_tokens=THINK_TOKENS)


def run(exe: list[str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*exe, *args], input=stdin, capture_output=True, text=True, timeout=120,
                          stdin=None if stdin is not None else subprocess.DEVNULL, start_new_session=True)


def test_ask_prints_the_answer_only_and_the_thinking_on_stderr_when_asked(hermes_exe, thinker) -> None:
    plain = run(hermes_exe, "ask", "x", "-m", str(thinker))
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == "OK\n" and "why" not in plain.stderr
    shown = run(hermes_exe, "ask", "x", "-m", str(thinker), "--show-thinking")
    assert shown.stdout == "OK\n" and "why" in shown.stderr and "<think>" not in shown.stderr


def test_a_batch_record_carries_reasoning_beside_its_output(hermes_exe, thinker, tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text('{"id": "a", "prompt": "x"}\n{"id": "b", "prompt": "y"}\n')
    for extra in ((), ("--parallel", "2")):
        out = tmp_path / f"out{len(extra)}.jsonl"
        proc = run(hermes_exe, "batch", str(tmp_path / "in.jsonl"), "-o", str(out), "-m", str(thinker), *extra)
        assert proc.returncode == 0, proc.stderr
        records = [json.loads(line) for line in out.read_text().splitlines()]
        assert [(r["output"], r["reasoning"]) for r in records] == [("OK", "why"), ("OK", "why")], extra


def test_chat_folds_the_thinking_and_think_shows_it_and_the_answer_alone_is_kept(
        hermes_exe, thinker, tmp_path: Path) -> None:
    import os

    env = {**os.environ, "HERMES_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.run([*hermes_exe, "chat", "-m", str(thinker)], input="hello\n/think\n", capture_output=True,
                          text=True, timeout=120, env=env, start_new_session=True)
    assert proc.returncode == 0, proc.stderr
    assert "(thought: 1 words · /think shows it)" in proc.stdout
    assert proc.stdout.count("why") == 1  # only /think shows it
    saved = next((tmp_path / "data" / "sessions").glob("*.json"))
    messages = json.loads(saved.read_text())["messages"]
    assert messages[-1] == {"role": "assistant", "content": "OK"} or (
        messages[-1]["role"] == "assistant" and messages[-1]["content"] == "OK")


def test_a_served_engines_reasoning_content_is_kept_apart_too(hermes_exe, tmp_path: Path) -> None:
    with EndlessServer(reply="The answer.", reasoning="First, <tool_call>not a call</tool_call> think.") as server:
        asked = run(hermes_exe, "ask", "x", "--endpoint", server.url, "--model", "m", "--show-thinking")
        (tmp_path / "in.jsonl").write_text('{"id": 1, "prompt": "x"}\n')
        out = tmp_path / "out.jsonl"
        batch = run(hermes_exe, "batch", str(tmp_path / "in.jsonl"), "-o", str(out), "--endpoint", server.url,
                    "--model", "m")
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout == "The answer.\n" and "First," in asked.stderr
    record = json.loads(out.read_text())
    assert batch.returncode == 0, batch.stderr
    assert record["output"] == "The answer." and record["reasoning"].startswith("First,")


def test_a_call_written_while_thinking_is_not_run(hermes_exe, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    (tmp_path / "t.py").write_text(f"def add(a: int, b: int) -> int:\n    \"\"\"Add.\"\"\"\n"
                                   f"    open({str(marker)!r}, 'w').close()\n    return a + b\n")
    thought = 'Maybe <tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call> but no.'
    with EndlessServer(reply="No tool needed.", reasoning=thought) as server:
        proc = run(hermes_exe, "ask", "x", "--endpoint", server.url, "--model", "m", "--tools",
                   str(tmp_path / "t.py"), "--yes")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "No tool needed.\n" and not marker.exists()


@pytest.mark.parametrize(("text", "expected"), [
    ("<think>\nwhy\n</think>\n\nOK", ("why", "OK")),
    ("  <think>a</think>b", ("a", "b")),
    ("<think>cut short", ("cut short", "")),
    ("no thinking <think>x</think>", (None, "no thinking <think>x</think>")),  # only at the start
    ("OK", (None, "OK")),
    ("<scratch_pad>\nplan\n</scratch_pad>\nOK", ("plan", "OK")),  # Hermes 3's section
    ("<scratch_pad>a</think>b", ("a</think>b", "")),  # each section ends with its own tag
])
def test_split_reasoning(text: str, expected) -> None:
    assert split_reasoning(text) == expected


@settings(max_examples=300, deadline=None)
@given(thinking=st.text(alphabet=st.sampled_from("ab<>/think_sp\n "), max_size=30),
       answer=st.text(alphabet=st.sampled_from("ab<>/think "), max_size=30),
       cuts=st.lists(st.integers(0, 80), max_size=8),
       tags=st.sampled_from([("<think>", "</think>"), ("<scratch_pad>", "</scratch_pad>")]))
def test_the_streaming_split_matches_the_whole_split_however_the_text_is_cut(thinking, answer, cuts, tags) -> None:
    assume(tags[1] not in thinking)
    text = f"{tags[0]}{thinking}{tags[1]}\n\n{answer}"
    points = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    assert split_reasoning(text)[0] is not None
    splitter, got = ThinkSplitter(), {"thinking": "", "answer": ""}
    for a, b in zip(points, points[1:]):
        for kind, piece in splitter.feed(text[a:b]):
            got[kind] += piece
    for kind, piece in splitter.finish():
        got[kind] += piece
    reasoning, whole_answer = split_reasoning(text)
    assert got["answer"] == whole_answer
    assert got["thinking"].strip("\n") == (reasoning or "")


def test_hermes_3s_scratch_pad_is_kept_apart_as_reasoning(hermes_exe, tmp_path_factory) -> None:
    """Hermes 3 plans in `<scratch_pad>…</scratch_pad>` before it answers (issue 31 item 3)."""
    tokens = (*tm.USER_TOKENS, "<scratch_pad>", "</scratch_pad>")
    vocab = tm.vocabulary(tokens)
    open_, close, end = vocab.index("<scratch_pad>"), vocab.index("</scratch_pad>"), vocab.index("<|im_end|>")
    b = tm.byte_token
    steps = [b(0x0A), open_, b(ord("p")), b(ord("l")), b(ord("a")), b(ord("n")), close, b(ord("O")), b(ord("K")), end]
    model = tm.write_model(tmp_path_factory.mktemp("pad") / "pad.gguf", kind="bigram",
                           bigram=dict(zip(steps, steps[1:])), user_tokens=tokens)
    shown = run(hermes_exe, "ask", "x", "-m", str(model), "--show-thinking")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == "OK\n" and shown.stderr.strip() == "plan"
