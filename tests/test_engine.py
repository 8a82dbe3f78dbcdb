"""The engine through the real llama.cpp, on tiny generated models."""

from __future__ import annotations

from pathlib import Path

import pytest

from hermes_cli.engine.model import Engine
from hermes_cli.engine.params import SamplingParams
from hermes_cli.errors import ContextOverflowError, ModelError
from hermes_cli.prompt.chatml import ChatML
from hermes_cli.prompt.messages import Message
from tests import tinymodels as tm


def ask(engine: Engine, text: str, **params) -> tuple[list[str], object]:
    chat = ChatML(engine)
    gen = engine.generate(chat.render([Message("user", text)]), SamplingParams(**params))
    chunks = list(gen)
    return chunks, gen.result


def test_streams_the_deterministic_reply_token_by_token(load) -> None:
    engine = load("hi")
    chunks, result = ask(engine, "hello")
    assert chunks == ["H", "i", "!"]
    assert result.text == "Hi!"
    assert result.finish_reason == "stop"
    assert result.completion_tokens == 3
    assert result.token_ids == list(tm.ids_for(b"Hi!"))


def test_incomplete_utf8_is_held_back_until_the_character_is_whole(load) -> None:
    chunks, result = ask(load("utf8"), "x")
    assert chunks == ["é", "!"]  # the byte 0xC3 alone yielded nothing
    assert result.completion_tokens == 3


@pytest.mark.parametrize("model", ["eot", "eot2"])
def test_every_end_of_generation_token_stops(load, model: str) -> None:
    chunks, result = ask(load(model), "x")
    assert "".join(chunks) == "ok"
    assert result.finish_reason == "stop"


def test_max_tokens_stops_with_reason_length(load) -> None:
    chunks, result = ask(load("endless"), "x", max_tokens=7)
    assert "".join(chunks) == "abababa"
    assert result.finish_reason == "length"
    assert result.completion_tokens == 7


def test_full_context_stops_with_reason_context(load) -> None:
    engine = load("endless", n_ctx=64)
    chunks, result = ask(engine, "x")
    assert result.finish_reason == "context"
    assert result.prompt_tokens + result.completion_tokens == 64


def test_prompt_larger_than_context_names_both_sizes(load) -> None:
    engine = load("hi", n_ctx=32)
    with pytest.raises(ContextOverflowError) as info:
        ask(engine, "word " * 40)
    assert info.value.n_ctx == 32
    assert f"{info.value.prompt_tokens} tokens" in str(info.value)
    assert "32" in str(info.value)


def test_same_seed_same_text_other_seed_other_text(load) -> None:
    engine = load("random")
    opts = dict(max_tokens=24, ignore_eos=True)
    first = ask(engine, "x", seed=42, **opts)[1].token_ids
    again = ask(engine, "x", seed=42, **opts)[1].token_ids
    other = ask(engine, "x", seed=43, **opts)[1].token_ids
    assert first == again
    assert first != other
    assert len(first) == 24


def test_random_bytes_never_break_decoding(load) -> None:
    chunks, result = ask(load("random"), "x", seed=1, max_tokens=300, temperature=1.5,
                         ignore_eos=True)
    assert "".join(chunks) == result.text
    assert result.completion_tokens == 300


def test_each_turn_evaluates_only_its_new_tokens(load) -> None:
    engine = load("hi")
    chat = ChatML(engine)
    messages = [Message("system", "be brief")]
    previous_context: list[int] = []
    for turn in range(10):
        messages.append(Message("user", f"question number {turn}"))
        prompt = chat.render(messages)
        gen = engine.generate(prompt, SamplingParams(seed=turn))
        assert "".join(gen) == "Hi!"
        result = gen.result
        assert prompt[: len(previous_context)] == previous_context
        assert result.prompt_reused == len(previous_context)
        assert result.prompt_evaluated == len(prompt) - len(previous_context)
        messages.append(Message("assistant", result.text, token_ids=result.token_ids))
        previous_context = prompt + result.token_ids
        assert engine.cached_tokens() == previous_context


def test_an_interrupted_reply_leaves_the_cache_usable(load) -> None:
    engine = load("endless")
    chat = ChatML(engine)
    prompt = chat.render([Message("user", "x")])
    gen = engine.generate(prompt)
    for i, _ in enumerate(gen):
        if i == 4:
            gen.close()
            break
    assert gen.result.finish_reason == "interrupted"
    assert gen.result.completion_tokens == 5
    again = engine.generate(prompt, SamplingParams(max_tokens=4))
    assert "".join(again) == "abab"
    assert again.result.prompt_reused == len(prompt) - 1


def test_missing_file_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        Engine.load(tmp_path / "nope.gguf")


def test_a_file_that_is_not_gguf_is_a_model_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.gguf"
    path.write_text("these are my notes, not a model\n")
    with pytest.raises(ModelError, match="not a GGUF"):
        Engine.load(path)


@pytest.mark.parametrize("keep", [0.2, 0.6, 0.97])
def test_a_truncated_gguf_is_a_model_error(tmp_path: Path, models, keep: float) -> None:
    data = models["hi"].read_bytes()
    path = tmp_path / "cut.gguf"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ModelError):
        Engine.load(path)


def test_trained_context_is_the_default_and_zero_means_trained(load) -> None:
    assert load("hi").n_ctx == 2048
    assert load("endless").n_ctx == 16384  # trained 32768, capped by default
    assert load("endless", n_ctx=0).n_ctx == 32768


def test_every_declared_end_token_is_known(load) -> None:
    engine = load("hi")
    eog = set(engine.eog_tokens())
    for name in ("<|im_end|>", "<|eot_id|>", "<|end_of_text|>"):
        assert engine.special_token(name) in eog


def test_a_closed_engine_raises_instead_of_crashing(models) -> None:
    engine = Engine.load(models["hi"])
    engine.close()
    engine.close()  # twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        engine.tokenize("x")
