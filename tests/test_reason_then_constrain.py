"""Issue 31, item 3: reason, then constrain. A reasoning model may think before a
`--schema`, `--json` or tool-call grammar holds (the grammar forbade `<think>` before);
`--think-budget N` forces `</think>` after N tokens; a prompt that opens the section
(DeepSeek-R1's template) starts the reply inside it. Through the real engine with tiny
bigram models whose `<think>`/`</think>` are single added tokens, as in Qwen3's vocabulary."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hermes_cli.engine.params import Thinking
from hermes_cli.engine.thinking import Tags, ThinkingFirst, plan
from tests import tinymodels as tm
from tests.test_serve import post, serving

THINK_TOKENS = (*tm.USER_TOKENS, "<think>", "</think>")
SCHEMA = {"type": "object", "properties": {"a": {"const": "yes"}}, "required": ["a"]}


def _model(path: Path, steps: dict[str, str], template: str | None = "", family: str = "chatml") -> Path:
    """A bigram model over named tokens: each key's next token is its value."""
    vocab = tm.vocabulary(THINK_TOKENS, family)

    def tok(name: str) -> int:
        return vocab.index(name) if name in vocab else tm.byte_token(ord(name))

    table = {tok(a): tok(b) for a, b in steps.items()}
    return tm.write_model(path, kind="bigram", bigram=table, user_tokens=THINK_TOKENS, chat_template=template,
                          family=family)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("reason")
    # thinker: `<think>why</think>OK`; ponder: thinks `whywhy…` and never closes by itself.
    thinker = {"\n": "<think>", "<think>": "w", "w": "h", "h": "y", "y": "</think>", "</think>": "O", "O": "K",
               "K": "<|im_end|>"}
    ponder = {**thinker, "y": "w"}
    # opened: a template that ends its generation prompt with `<think>\n` (DeepSeek-R1's way).
    opened = {**thinker, "\n": "w", "K": "<|eot_id|>"}
    r1 = ("{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n"
          "{{ m.content }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant"
          "<|end_header_id|>\n\n<think>\n{% endif %}")
    return {"thinker": _model(d / "thinker.gguf", thinker), "ponder": _model(d / "ponder.gguf", ponder),
            "opened": _model(d / "opened.gguf", opened, template=r1, family="llama3")}


def run(exe: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*exe, *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                          start_new_session=True)


def test_a_schema_answer_comes_after_the_models_thinking_which_is_kept(hermes_exe, models, tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text(json.dumps(SCHEMA))
    proc = run(hermes_exe, "ask", "x", "-m", str(models["thinker"]), "--schema", str(tmp_path / "s.json"),
               "--show-thinking", "--max-tokens", "60")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"a": "yes"}
    assert proc.stderr.strip() == "why"  # thought first, freely; the grammar held the answer


def test_json_mode_after_thinking_in_batch_records_reasoning_beside_valid_output(
        hermes_exe, models, tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text(json.dumps(SCHEMA))
    (tmp_path / "in.jsonl").write_text('{"id": 1, "prompt": "x"}\n{"id": 2, "prompt": "y"}\n')
    for extra in ((), ("--parallel", "2")):
        out = tmp_path / f"out{len(extra)}.jsonl"
        proc = run(hermes_exe, "batch", str(tmp_path / "in.jsonl"), "-o", str(out), "-m", str(models["thinker"]),
                   "--schema", str(tmp_path / "s.json"), "--max-tokens", "60", *extra)
        assert proc.returncode == 0, proc.stderr
        records = [json.loads(line) for line in out.read_text().splitlines()]
        assert [(r["output"], r["reasoning"]) for r in records] == [({"a": "yes"}, "why")] * 2, extra


def test_a_forced_tool_call_comes_after_thinking_and_runs(hermes_exe, models, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    (tmp_path / "t.py").write_text(
        "def ping(word: str) -> str:\n    \"\"\"Ping.\"\"\"\n"
        f"    open({str(marker)!r}, 'w').write(word)\n    return 'pong'\n")
    proc = run(hermes_exe, "ask", "x", "-m", str(models["thinker"]), "--tools", str(tmp_path / "t.py"),
               "--tool-choice", "ping", "--yes", "--max-tokens", "100", "--show-thinking", "--stats")
    assert proc.returncode == 0, proc.stderr
    assert marker.exists()  # the call was written whole, and run
    assert proc.stderr.startswith("why\n→ ping ")  # after the model's thinking (its line ended first)


def test_think_budget_forces_the_close_after_that_many_tokens(hermes_exe, models) -> None:
    for budget, thought in ((7, "whywhyw"), (2, "wh")):
        proc = run(hermes_exe, "ask", "x", "-m", str(models["ponder"]), "--think-budget", str(budget),
                   "--show-thinking", "--max-tokens", "60")
        assert proc.returncode == 0, proc.stderr
        assert (proc.stdout, proc.stderr.strip()) == ("OK\n", thought), budget
    unbounded = run(hermes_exe, "ask", "x", "-m", str(models["ponder"]), "--show-thinking", "--max-tokens", "30")
    assert unbounded.stdout.strip() == ""  # without a budget it never stops thinking: nothing answered


def test_think_budget_holds_before_a_schema_and_through_hermes_serve(hermes_exe, models, tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text(json.dumps(SCHEMA))
    proc = run(hermes_exe, "ask", "x", "-m", str(models["ponder"]), "--think-budget", "4", "--schema",
               str(tmp_path / "s.json"), "--show-thinking", "--max-tokens", "60")
    assert proc.returncode == 0, proc.stderr
    assert (json.loads(proc.stdout), proc.stderr.strip()) == ({"a": "yes"}, "whyw")
    with serving(hermes_exe, models["ponder"]) as served:
        status, body = post(served.port, {"messages": [{"role": "user", "content": "x"}], "thinking_budget": 5,
                                          "max_tokens": 60})
        assert status == 200, body
        message = body["choices"][0]["message"]
        assert (message["content"], message["reasoning_content"]) == ("OK", "whywh")
        # a schema through the API: thought first (within the budget), then the answer under the grammar
        status, body = post(served.port, {"messages": [{"role": "user", "content": "x"}], "thinking_budget": 3,
                                          "max_tokens": 60, "response_format": {
                                              "type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA}}})
    assert status == 200, body
    message = body["choices"][0]["message"]
    assert (json.loads(message["content"]), message["reasoning_content"]) == ({"a": "yes"}, "why")


def test_a_prompt_that_opens_the_section_starts_the_reply_inside_it(hermes_exe, models, tmp_path: Path) -> None:
    proc = run(hermes_exe, "ask", "x", "-m", str(models["opened"]), "--show-thinking", "--max-tokens", "30")
    assert proc.returncode == 0, proc.stderr
    assert (proc.stdout, proc.stderr.strip()) == ("OK\n", "why")
    (tmp_path / "s.json").write_text(json.dumps(SCHEMA))
    constrained = run(hermes_exe, "ask", "x", "-m", str(models["opened"]), "--schema", str(tmp_path / "s.json"),
                      "--max-tokens", "30")
    assert constrained.returncode == 0, constrained.stderr
    assert json.loads(constrained.stdout) == {"a": "yes"}


def test_no_think_answers_under_the_grammar_at_once(hermes_exe, models, tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text(json.dumps(SCHEMA))
    proc = run(hermes_exe, "ask", "x", "-m", str(models["thinker"]), "--no-think", "--schema",
               str(tmp_path / "s.json"), "--show-thinking", "--max-tokens", "30")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"a": "yes"} and proc.stderr.strip() == ""


def test_think_budget_out_of_range_is_one_line_and_exit_2(hermes_exe, models) -> None:
    proc = run(hermes_exe, "ask", "x", "-m", str(models["thinker"]), "--think-budget", "-1")
    assert proc.returncode == 2 and "think" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# -- the state machine alone, over any sampling ---------------------------------------------

class _Vocab:
    n_tokens = 12
    eog = frozenset({11})


OPEN_ID, CLOSE_ID, NL = 8, 9, 10
TAGS = Tags(OPEN_ID, CLOSE_ID, frozenset({NL}))


class _Inner:
    """A grammar that wants exactly tokens 1, 2, 3 and then the end."""

    want = [1, 2, 3]

    def __init__(self) -> None:
        self.at = 0

    def check(self, token: int) -> bool:
        return token == (self.want[self.at] if self.at < 3 else 11)

    def accept(self, token: int) -> None:
        self.at += 1

    def allowed(self) -> np.ndarray:
        return np.array([self.want[self.at] if self.at < 3 else 11], dtype=np.int32)

    def open(self) -> bool:
        return self.at < 3

    def forced(self) -> list[int]:
        return []

    def closing(self, limit: int) -> list[int] | None:
        rest = self.want[self.at:]
        return rest if len(rest) <= limit else None

    def ending_after(self, token: int, limit: int) -> list[int] | None:
        rest = self.want[self.at + 1:]
        return rest if len(rest) <= limit else None


@settings(max_examples=300, deadline=None)
@given(picks=st.lists(st.integers(0, 11), min_size=1, max_size=60), budget=st.none() | st.integers(0, 6),
       started=st.booleans())
def test_whatever_the_model_samples_the_budget_holds_and_the_answer_is_the_grammars(picks, budget, started) -> None:
    inner = _Inner()
    c = ThinkingFirst(_Vocab(), TAGS, Thinking(budget=budget, started=started), inner)  # type: ignore[arg-type]
    written: list[int] = []
    for pick in picks:
        token = pick if c.check(pick) else int(c.allowed()[pick % len(c.allowed())])
        assert c.check(token)
        if token in _Vocab.eog:
            break
        c.accept(token)
        written.append(token)
    thinking = not started and written[:1] == [OPEN_ID] or started
    if thinking:
        body = written[(0 if started else 1):]
        thought = body[:body.index(CLOSE_ID)] if CLOSE_ID in body else body
        assert budget is None or len(thought) <= budget
        if CLOSE_ID in body:
            answer = [t for t in body[body.index(CLOSE_ID) + 1:]]
            blanks = len(answer) - len([t for t in answer if t != NL])
            assert blanks <= 2 and answer[:blanks] == [NL] * blanks  # a blank line, if any, first
            assert answer[blanks:] == [1, 2, 3][:len(answer) - blanks]
    else:
        assert written == [1, 2, 3][:len(written)]  # no thinking: the grammar from the first token


def test_plan_reads_the_prompts_end() -> None:
    assert plan(None, [1, 2], constrained=True, budget=None) is None  # no tags: nothing to watch
    assert plan(TAGS, [1, OPEN_ID, NL], constrained=False, budget=None) == Thinking(started=True)
    assert plan(TAGS, [OPEN_ID, NL, CLOSE_ID, NL, NL], constrained=True, budget=3) is None  # --no-think
    assert plan(TAGS, [1, 2], constrained=False, budget=None) is None  # free text, no budget: no cost
    assert plan(TAGS, [1, 2], constrained=True, budget=None) == Thinking()


def test_chat_set_think_budget_holds_for_the_next_turns(hermes_exe, models, tmp_path: Path) -> None:
    import os

    env = {**os.environ, "HERMES_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.run([*hermes_exe, "chat", "-m", str(models["ponder"]), "--max-tokens", "40"],
                          input="/set think_budget 2\nhi\n/think\n", capture_output=True, text=True,
                          timeout=120, env=env, start_new_session=True)
    assert proc.returncode == 0, proc.stderr
    assert "think_budget = 2" in proc.stdout and "OK" in proc.stdout
    lines = [line.strip().removeprefix(">").strip() for line in proc.stdout.splitlines()]
    assert "wh" in lines and "why" not in proc.stdout  # /think shows the 2 tokens it was allowed
