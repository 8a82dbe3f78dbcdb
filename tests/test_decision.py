"""Issue 33, item 7: decision mode. The probabilities are the model's own, computed from
its logits, checked here against an independent computation (a fresh KV cache per label,
float64 softmax over the whole vocabulary), on shared-prefix labels too."""

from __future__ import annotations

import json
import math
import subprocess

import numpy as np
import pytest

from hermes_cli.core.backends import LocalBackend
from hermes_cli.core.decision import decide, decision_messages, parse_choices
from hermes_cli.errors import UsageError
from hermes_cli.prompt.chatml import ChatML


def direct_logprob(engine, prompt: list[int], label: list[int]) -> float:
    """log P(label, then any end-of-generation token), as the model would write it: the
    prompt decoded into a cleared cache, then the label one token at a time."""
    total = 0.0
    engine.forget()
    engine.evaluate(prompt)
    for i in range(len(label) + 1):
        if i:
            engine.evaluate([label[i - 1]])
        logits = np.ctypeslib.as_array(engine._c.llama_get_logits_ith(engine._live_ctx(), -1),
                                       shape=(engine.vocab.n_tokens,)).astype(np.float64)
        logp = logits - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
        total += float(logp[label[i]]) if i < len(label) else math.log(sum(math.exp(logp[e])
                                                                           for e in engine.eog_tokens()))
    return total


@pytest.mark.parametrize("labels", [["yes", "no", "maybe"], ["ab", "abab", "a", "b"]])
def test_the_probabilities_are_the_models_own_and_sum_to_one(load, labels) -> None:
    engine = load("random", n_ctx=2048)
    engine.forget()  # as the independent computation starts: the prompt decoded as one batch
    backend = LocalBackend(engine, ChatML(engine))
    messages = decision_messages(None, "Is it?", labels)
    decision = decide(backend, messages, labels)
    probs = [decision.probabilities[label] for label in labels]
    assert math.isclose(sum(probs), 1.0, rel_tol=1e-9)
    prompt = ChatML(engine).render(messages)
    direct = [direct_logprob(engine, prompt, engine.tokenize(label)) for label in labels]
    expected = np.exp(np.array(direct) - max(direct))
    expected /= expected.sum()
    assert np.allclose(probs, expected, rtol=1e-9, atol=1e-15), (probs, list(expected))
    assert decision.label == labels[int(np.argmax(expected))]


def test_labels_that_share_a_prefix_are_scored_whole(load) -> None:
    """"Hi" is the start of "Hi!": the deterministic model writes "Hi!" and ends, so the
    longer label wins although the shorter one is its prefix."""
    engine = load("hi")
    labels = ["Hi", "Hi!", "Bye"]
    decision = decide(LocalBackend(engine, ChatML(engine)), decision_messages(None, "x", labels), labels)
    assert decision.label == "Hi!" and decision.probabilities["Hi!"] > 0.9


@pytest.mark.parametrize(("spec", "why"), [("a", "2 to 64"), ("a,,b", "empty"), ("a,b,a", "twice")])
def test_bad_choices_are_one_line(spec: str, why: str) -> None:
    with pytest.raises(UsageError, match=why):
        parse_choices(spec)


def test_the_command_prints_the_label_or_json(hermes_exe, models) -> None:
    def ask(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*hermes_exe, "ask", "x", "-m", str(models["hi"]), *args], capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL)

    plain = ask("--choices", "Hi,Hi!,Bye")
    assert plain.returncode == 0 and plain.stdout == "Hi!\n", plain.stderr
    as_json = json.loads(ask("--choices", "Hi,Hi!,Bye", "--json").stdout)
    assert as_json["label"] == "Hi!" and set(as_json["probabilities"]) == {"Hi", "Hi!", "Bye"}
    assert math.isclose(sum(as_json["probabilities"].values()), 1.0, rel_tol=1e-9)
    for bad in (("--choices", "one"), ("--choices", "a,b", "--schema", '{"type": "object"}')):
        proc = ask(*bad)
        assert proc.returncode == 2 and "--choices" in proc.stderr, proc.stderr


def test_a_served_engine_cannot_decide_and_says_why(hermes_exe) -> None:
    from tests.scripted_server import EndlessServer

    with EndlessServer(reply="a") as server:
        proc = subprocess.run([*hermes_exe, "ask", "x", "--endpoint", server.url, "--model", "m", "--choices", "a,b"],
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and "does not send its logits" in proc.stderr


def test_batch_lines_decide_with_their_own_or_the_commands_choices(hermes_exe, models, tmp_path) -> None:
    lines = ['{"id": "a", "prompt": "x", "choices": ["Hi", "Hi!", "Bye"]}', '{"id": "b", "prompt": "y"}',
             '{"id": "c", "prompt": "z", "choices": ["only"]}', '{"id": "d", "prompt": "w", "choices": "Hi!"}']
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    for extra in ((), ("--parallel", "2")):
        out = tmp_path / f"out{len(extra)}.jsonl"
        proc = subprocess.run([*hermes_exe, "batch", str(tmp_path / "in.jsonl"), "-o", str(out), "-m",
                               str(models["hi"]), "--choices", "Bye,Hi!", *extra], capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL)
        assert proc.returncode == 1, proc.stderr  # lines c and d are errors
        recs = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
        assert recs["a"]["output"] == "Hi!" and set(recs["a"]["probabilities"]) == {"Hi", "Hi!", "Bye"}
        assert recs["b"]["output"] == "Hi!" and set(recs["b"]["probabilities"]) == {"Bye", "Hi!"}
        assert "2 to 64 labels" in recs["c"]["error"] and "a list of labels" in recs["d"]["error"]
        for r in (recs["a"], recs["b"]):
            assert math.isclose(sum(r["probabilities"].values()), 1.0, rel_tol=1e-9)


def test_chat_decision_mode_answers_with_a_label_and_its_probabilities(load) -> None:
    from tests.test_repl import Driven

    d = Driven(load("hi"))
    out = d.run("/choices Hi,Hi!,Bye", "hello", "/choices off", "again", "/choices only")
    assert "decision mode: each message is answered with one of Hi, Hi!, Bye" in out
    assert "decision: Hi! " in out and "Hi " in out and "Bye " in out
    assert [(m.role, m.content) for m in d.conversation.messages] == [
        ("user", "hello"), ("assistant", "Hi!"), ("user", "again"), ("assistant", "Hi!")]
    assert out.count("decision:") == 1  # off: the next reply was written, not decided
    assert "error: /choices 'only': 2 to 64 labels" in out


def test_a_roles_choices_make_ask_decide_and_bad_ones_are_one_line(hermes_exe, models, tmp_path) -> None:
    import os

    config = tmp_path / "config.toml"
    config.write_text('[roles.triage]\nchoices = ["Hi", "Hi!", "Bye"]\n')
    env = {**os.environ, "HERMES_CONFIG": str(config)}
    proc = subprocess.run([*hermes_exe, "ask", "x", "-r", "triage", "-m", str(models["hi"])], capture_output=True,
                          text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0 and proc.stdout == "Hi!\n", proc.stderr
    config.write_text('[roles.triage]\nchoices = ["one"]\n')
    proc = subprocess.run([*hermes_exe, "ask", "x", "-r", "triage", "-m", str(models["hi"])], capture_output=True,
                          text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and "[roles.triage] choices" in proc.stderr
