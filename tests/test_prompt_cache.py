"""The prompt cache (engine/prompt_cache.py) and the grammar tokenizer built during the
model load (engine/grammars.py's EarlyTokenizer): the two things a one-shot structured
answer keeps between processes (issue 22). Through the real engine on tiny models, and
through the `hermes` command as a user runs it."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest

from hermes_cli.core.backends import LocalBackend
from hermes_cli.core.turn import run
from hermes_cli.engine.grammars import _pieces_cache
from hermes_cli.engine.model import Engine
from hermes_cli.engine.params import SamplingParams
from hermes_cli.engine.prompt_cache import PromptCache
from hermes_cli.modes import json_mode as jsonmode
from hermes_cli.modes.json_schema import validation_errors
from hermes_cli.prompt.chatml import ChatML
from hermes_cli.prompt.messages import Message

SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 10},
                                           "age": {"type": "integer"}}, "required": ["name", "age"]}
LOADED = re.compile(r"(\d+) of them from the prompt cache")


def answer(engine: Engine, cache: PromptCache | None, seed: int, question: str = "Fill it in.") -> tuple[str, int]:
    """A schema answer on `engine`, and how many prompt tokens came from `cache`."""
    mode = jsonmode.JsonMode(SCHEMA)
    messages = [Message("system", mode.system_prompt()), Message("user", question)]
    reply = run(LocalBackend(engine, ChatML(engine), prompt_cache=cache),
                jsonmode.json_reply(messages, mode, SamplingParams(seed=seed, max_tokens=48)))
    return reply.text, sum(r.prompt_loaded for r in reply.results)


def states(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.kv"))


# -- in process ---------------------------------------------------------------------------


def test_a_kept_system_prompt_is_loaded_by_the_next_engine_and_the_answers_are_the_same(load, tmp_path) -> None:
    cache = PromptCache(tmp_path / "prompts")
    first = load("random")
    made = [answer(first, cache, seed) for seed in (1, 2, 3)]
    assert [loaded for _, loaded in made] == [0, 0, 0]  # one process: the KV cache serves seeds 2, 3
    assert len(states(cache.directory)) == 1
    second = load("random")  # a new process's engine: nothing held
    again = [answer(second, cache, seed) for seed in (1, 2, 3)]
    assert again[0][1] > 100  # the system prompt with its schema, from the file
    assert [text for text, _ in again] == [text for text, _ in made]
    for text, _ in again:
        assert validation_errors(json.loads(text), SCHEMA) == []


def test_a_kept_state_is_for_the_user_alone(load, tmp_path) -> None:
    cache = PromptCache(tmp_path / "prompts")
    answer(load("random"), cache, 1)
    (kept,) = states(cache.directory)
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.directory.stat().st_mode) == 0o700


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "empty"])
def test_a_damaged_state_is_deleted_not_loaded_and_the_answer_is_unchanged(load, tmp_path, damage) -> None:
    cache = PromptCache(tmp_path / "prompts")
    expected, _ = answer(load("random"), cache, 1)
    (kept,) = states(cache.directory)
    good = kept.read_bytes()
    data = bytearray(good)
    if damage == "flip a byte":
        data[len(data) // 2] ^= 0x40
    elif damage == "truncate":
        del data[len(data) // 2:]
    else:
        data.clear()
    kept.write_bytes(bytes(data))
    text, loaded = answer(load("random"), cache, 1)
    assert loaded == 0 and text == expected
    assert [p.read_bytes() for p in states(cache.directory)] == [good]  # kept again, whole


def test_a_whole_state_for_other_tokens_is_never_loaded(load, tmp_path) -> None:
    """A file renamed to another prefix's name (its own digest still right) holds ids
    that are not this prompt's: refused by the ids, whatever its bytes."""
    cache = PromptCache(tmp_path / "prompts")
    engine = load("random")
    answer(engine, cache, 1, "Fill it in.")
    (theirs,) = states(cache.directory)
    other = load("random")
    ids = ChatML(other).render([Message("system", "Another system prompt, long enough to be kept: " * 3)],
                               add_generation_prompt=False)
    from hermes_cli.engine.prompt_cache import _key

    forged = cache.directory / f"{_key(other, ids)}-{theirs.stem.rpartition('-')[2]}.kv"
    forged.write_bytes(theirs.read_bytes())
    assert cache.restore(other, ids) == 0
    assert other.cached_tokens() == [] and not forged.exists()


def test_the_cache_keeps_the_newest_states_within_its_budget(load, tmp_path) -> None:
    engine = load("random")
    prefixes = [engine.tokenize(f"prefix number {i} " * 8) for i in range(4)]
    probe = PromptCache(tmp_path / "probe")
    engine.evaluate(prefixes[0])
    assert probe.store(engine, prefixes[0])
    size = states(probe.directory)[0].stat().st_size
    cache = PromptCache(tmp_path / "prompts", budget=int(size * 2.5))
    base = time.time() - 100
    for i, ids in enumerate(prefixes):
        before = set(states(cache.directory))
        engine.forget()
        engine.evaluate(ids)
        assert cache.store(engine, ids)
        (new,) = set(states(cache.directory)) - before
        os.utime(new, (base + i, base + i))  # oldest first, whatever the clock's resolution
    kept = states(cache.directory)
    assert len(kept) == 2 and sum(p.stat().st_size for p in kept) <= cache.budget
    engine.forget()
    assert cache.restore(engine, prefixes[3]) == len(prefixes[3])
    assert cache.restore(engine, prefixes[0]) == 0


def test_a_killed_writers_leftover_is_removed_once_stale(load, tmp_path) -> None:
    cache = PromptCache(tmp_path / "prompts")
    cache.directory.mkdir(parents=True)
    stale, fresh = cache.directory / ".dead.123.tmp", cache.directory / ".busy.456.tmp"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"being written")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    answer(load("random"), cache, 1)
    assert not stale.exists() and fresh.exists()


def test_a_cache_that_cannot_be_written_costs_only_time(load, tmp_path) -> None:
    blocked = tmp_path / "prompts"
    blocked.write_text("a file where the directory should be")
    expected, _ = answer(load("random"), PromptCache(tmp_path / "elsewhere"), 1)
    text, loaded = answer(load("random"), PromptCache(blocked), 1)
    assert (text, loaded) == (expected, 0)


# -- the command ----------------------------------------------------------------------------


def ask(exe: list[str], model: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([*exe, "ask", "Fill it in.", "-m", str(model), "--schema", json.dumps(SCHEMA),
                           "--seed", "4", "--max-tokens", "48", "--stats", *extra],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_cli_a_second_ask_loads_the_schema_prompt_and_prints_the_same_answer(hermes_exe, models, tmp_path) -> None:
    first, second = ask(hermes_exe, models["random"]), ask(hermes_exe, models["random"])
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert not LOADED.search(first.stderr)
    m = LOADED.search(second.stderr)
    assert m and int(m.group(1)) > 100, second.stderr
    assert second.stdout == first.stdout and json.loads(second.stdout)


def test_cli_no_prompt_cache_keeps_and_loads_nothing(hermes_exe, models, tmp_path) -> None:
    for _ in range(2):
        proc = ask(hermes_exe, models["random"], "--no-prompt-cache")
        assert proc.returncode == 0 and not LOADED.search(proc.stderr), proc.stderr
    assert not (tmp_path / "cache" / "prompts").exists()


def test_cli_the_config_can_turn_the_prompt_cache_off(hermes_exe, models, tmp_path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("prompt_cache = false\n")
    env = {**os.environ, "HERMES_CONFIG": str(config)}
    for _ in range(2):
        proc = subprocess.run([*hermes_exe, "ask", "Fill it in.", "-m", str(models["random"]), "--schema",
                               json.dumps(SCHEMA), "--seed", "4", "--max-tokens", "48", "--stats"],
                              capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0 and not LOADED.search(proc.stderr), proc.stderr
    assert not (tmp_path / "cache" / "prompts").exists()


def test_cli_two_asks_at_once_answer_alike_and_leave_one_whole_state(hermes_exe, models, tmp_path) -> None:
    argv = [*hermes_exe, "ask", "Fill it in.", "-m", str(models["random"]), "--schema", json.dumps(SCHEMA),
            "--seed", "4", "--max-tokens", "48", "--threads", "1"]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              stdin=subprocess.DEVNULL) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert outs[0][0] == outs[1][0]
    kept = states(tmp_path / "cache" / "prompts")
    assert len(kept) == 1 and not list((tmp_path / "cache" / "prompts").glob(".*"))
    third = ask(hermes_exe, models["random"], "--threads", "1")
    assert LOADED.search(third.stderr) and third.stdout == outs[0][0], third.stderr


# -- the grammar tokenizer, built while the model loads ------------------------------------


def schema_answers(engine: Engine) -> list[str]:
    return [answer(engine, None, seed)[0] for seed in (1, 2, 3)]


def test_with_the_pieces_kept_the_tokenizer_is_built_during_the_load_and_constrains_alike(models) -> None:
    late = Engine.load(models["random"], n_threads=2, grammars=True)  # the model's first grammar
    try:
        before = schema_answers(late)
        assert not late.grammars.built_early
    finally:
        late.close()
    assert _pieces_cache(models["random"]).is_file()
    early = Engine.load(models["random"], n_threads=2, grammars=True)
    try:
        assert schema_answers(early) == before
        assert early.grammars.built_early
    finally:
        early.close()


@pytest.mark.parametrize("damage", ["garbage", "another vocabulary", "an older format"])
def test_kept_pieces_that_do_not_fit_are_built_again(models, damage) -> None:
    import marshal

    first = Engine.load(models["random"], n_threads=2, grammars=True)
    try:
        expected = schema_answers(first)
    finally:
        first.close()
    kept = _pieces_cache(models["random"])
    fmt, n, eog, pieces, order = marshal.loads(kept.read_bytes())
    if damage == "garbage":
        kept.write_bytes(b"\x00not marshal")
    elif damage == "another vocabulary":  # one token more, the ends elsewhere
        kept.write_bytes(marshal.dumps((fmt, n + 1, [t + 1 for t in eog], [*pieces, b"x"],
                                        order + (n).to_bytes(4, "little"))))
    else:
        kept.write_bytes(marshal.dumps((2, n, pieces)))
    engine = Engine.load(models["random"], n_threads=2, grammars=True)
    try:
        assert schema_answers(engine) == expected
        assert not engine.grammars.built_early
    finally:
        engine.close()
    again = marshal.loads(kept.read_bytes())  # written again, whole, for this vocabulary
    assert (again[0], again[1], again[2]) == (fmt, n, eog)


# -- which tokens begin with given bytes (engine/constraint.py's Extensions) ----------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_BYTES = st.binary(max_size=4).map(lambda b: bytes(x % 4 + (0xFC if x % 5 == 0 else 0x21) for x in b))


@settings(max_examples=200, deadline=None)
@given(pieces=st.lists(_BYTES, min_size=1, max_size=40), prefixes=st.lists(_BYTES, min_size=1, max_size=6))
def test_the_sorted_lookup_finds_exactly_the_tokens_a_scan_finds(pieces, prefixes) -> None:
    """Bytes from a 4-letter alphabet and 0xFC–0xFF (control tokens are marked with 0xFF):
    many shared prefixes, empty pieces, and prefixes whose successor needs a carry."""
    from array import array

    from hermes_cli.engine.constraint import Extensions

    order = array("i", sorted(range(len(pieces)), key=pieces.__getitem__))
    bisected, scanned = Extensions(pieces, order), Extensions(pieces)
    for prefix in [*prefixes, b"\xff", b"\xff\xff", b""]:
        assert sorted(bisected.of(prefix).tolist()) == scanned.of(prefix).tolist()


def test_a_template_that_refuses_a_system_prompt_alone_keeps_nothing_and_answers(load, tmp_path) -> None:
    """Which part of the prompt is kept is found by rendering the system messages alone;
    a GGUF template may refuse that (it wants a user turn): the answer comes, uncached.
    (A ChatML wrapper that refuses as such a template does: a Jinja one that refused
    would be refused at load by hermes's own probes first.)"""
    from hermes_cli.errors import UsageError

    engine = load("random")
    chatml = ChatML(engine)

    class Strict:
        def render(self, messages, *, add_generation_prompt=True):
            if messages[-1].role != "user":
                raise UsageError("the model's chat template refused these messages: a user turn last")
            return chatml.render(messages, add_generation_prompt=add_generation_prompt)

        def signature(self):
            return chatml.signature()

    cache = PromptCache(tmp_path / "prompts")
    mode = jsonmode.JsonMode(SCHEMA)
    messages = [Message("system", mode.system_prompt()), Message("user", "Fill it in.")]
    backend = LocalBackend(engine, Strict(), prompt_cache=cache)
    reply = run(backend, jsonmode.json_reply(messages, mode, SamplingParams(seed=1, max_tokens=48)))
    assert validation_errors(json.loads(reply.text), SCHEMA) == []
    assert states(cache.directory) == []
