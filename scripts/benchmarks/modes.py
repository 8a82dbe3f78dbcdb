"""JSON mode and tool calls against free decoding, same model, same run: decode tokens/s
with the grammar (llguidance, checked token by token) over tokens/s without. Beside them,
the same JSON grammar through llama.cpp's GBNF sampler in the same check-then-resample
loop, and through llama-cpp-python's own chain (the grammar over every candidate on
every step: what hermes did before). Then the grammar's set-up cost: the tokenizer
(once per model: cold, then with its pieces cached) and compiling a 50-property schema."""

from __future__ import annotations

import ctypes
import json
import time
from pathlib import Path
from typing import Any

from benchmarks.common import SAMPLING, SEED, interleaved
from hermes_cli.engine.grammars import Grammars
from hermes_cli.engine.llama import lib
from hermes_cli.engine.model import Engine
from hermes_cli.engine.params import SamplingParams
from hermes_cli.modes.json_grammar import schema_grammar
from hermes_cli.modes.json_mode import JsonMode
from hermes_cli.modes.tools.protocol import forced_call_grammar, lazy_call_grammar
from hermes_cli.modes.tools.protocol import system_prompt as tools_prompt
from hermes_cli.modes.tools.tool import Tool
from hermes_cli.prompt.chatml import ChatML
from hermes_cli.prompt.messages import Message

PERSON = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 40},
                                           "age": {"type": "integer", "minimum": 0, "maximum": 120},
                                           "city": {"type": "string", "maxLength": 40}},
          "required": ["name", "age", "city"]}
PEOPLE = {"type": "object", "properties": {"people": {"type": "array", "items": PERSON, "minItems": 500}},
          "required": ["people"]}
TOOL = Tool("record_people", "Record people in the register.", PEOPLE)
FIFTY = {"type": "object", "properties": {f"field_{i}": {"type": ["string", "integer", "boolean"][i % 3]}
                                          for i in range(50)}, "required": [f"field_{i}" for i in range(50)]}


class GbnfCheck:
    """llama.cpp's GBNF grammar sampler behind the same check / allowed interface, for
    the comparison only (hermes uses llguidance)."""

    def __init__(self, engine: Engine, gbnf: str) -> None:
        c = self.c = lib()
        self.n_vocab = engine.vocab.n_tokens
        self.sampler = c.llama_sampler_init_grammar(engine.vocab.ptr, gbnf.encode(), b"root")
        self.one = (c.llama_token_data * 1)()
        self.full: Any = None

    def check(self, token: int) -> bool:
        c = self.c
        self.one[0].id, self.one[0].logit, self.one[0].p = token, 0.0, 0.0
        arr = c.llama_token_data_array(self.one, 1, -1, False)
        c.llama_sampler_apply(self.sampler, ctypes.byref(arr))
        return self.one[0].logit != float("-inf")

    def accept(self, token: int) -> None:
        self.c.llama_sampler_accept(self.sampler, token)

    def open(self) -> bool:
        return False

    def forced(self) -> list[int]:
        return []  # GBNF does not say what it forces: every token is sampled

    def allowed(self) -> Any:
        import numpy as np

        c = self.c
        if self.full is None:
            self.full = np.zeros(self.n_vocab, dtype=np.dtype(
                [("id", np.int32), ("logit", np.float32), ("p", np.float32)], align=True))
        self.full["id"] = np.arange(self.n_vocab, dtype=np.int32)
        self.full["logit"] = 0.0
        arr = c.llama_token_data_array(self.full.ctypes.data_as(ctypes.POINTER(c.llama_token_data)),
                                       self.n_vocab, -1, False)
        c.llama_sampler_apply(self.sampler, ctypes.byref(arr))
        return self.full["id"][np.isfinite(self.full["logit"])].copy()


def _tps(engine: Engine, prompt: list[int], n: int, grammar: Any, gbnf: str | None = None,
         fast_forward: bool = True) -> tuple[float, float]:
    """(answer tokens/s, share of tokens the grammar rejected) for n constrained tokens
    (forced tokens count: they are the answer's too)."""
    engine.forget()
    params = SamplingParams(**SAMPLING, max_tokens=n, seed=SEED, ignore_eos=True, fast_forward=fast_forward)
    original = engine.grammars.matcher
    if gbnf is not None:
        engine.grammars.matcher = lambda _g: GbnfCheck(engine, gbnf)  # type: ignore[method-assign]
    try:
        result = engine.generate(prompt, params, grammar=grammar).consume()
    finally:
        engine.grammars.matcher = original  # type: ignore[method-assign]
    tps = (result.completion_tokens - 1) / result.generation_seconds
    return tps, result.resampled / max(1, result.completion_tokens)


def _in_chain_tps(path: Path, prompt: list[int], n: int, gbnf: str, threads: int) -> float:
    """llama-cpp-python's Llama.generate with the grammar in its chain (before top-k)."""
    import llama_cpp
    from llama_cpp.llama_grammar import LlamaGrammar

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=len(prompt) + n + 8, n_threads=threads,
                          n_threads_batch=threads, verbose=False, seed=SEED)
    grammar = LlamaGrammar.from_string(gbnf, verbose=False)
    count, first = 0, 0.0
    for _t in llm.generate(prompt, temp=SAMPLING["temperature"], top_k=SAMPLING["top_k"],
                           top_p=SAMPLING["top_p"], min_p=SAMPLING["min_p"],
                           repeat_penalty=SAMPLING["repeat_penalty"], grammar=grammar):
        count += 1
        if count == 1:
            first = time.perf_counter()
        if count == n:
            break
    llm.close()
    return (count - 1) / (time.perf_counter() - first)


def section(models: list[tuple[Path, str]], n: int, repeat: int) -> None:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    gbnf = json_schema_to_gbnf(json.dumps(PEOPLE))
    rows, setup = [], []
    for path, label in models:
        engine = Engine.load(path, n_ctx=2 * n + 1024)
        chat = ChatML(engine)
        json_prompt = chat.render([Message("system", JsonMode(PEOPLE).system_prompt()),
                                   Message("user", "List the people of a small town.")])
        tool_prompt = chat.render([Message("system", tools_prompt([TOOL])),
                                   Message("user", "Record the people of a small town.")])
        engine.grammars.tokenizer()  # built once per model: timed below, not here
        # Each constrained run is compared with free decoding after the same prompt (a
        # longer prompt alone makes every step slower).
        runs = interleaved({
            "free": lambda: _tps(engine, json_prompt, n, None)[0],
            "json": lambda: _tps(engine, json_prompt, n, schema_grammar(PEOPLE))[0],
            "json_noff": lambda: _tps(engine, json_prompt, n, schema_grammar(PEOPLE), fast_forward=False)[0],
            "gbnf": lambda: _tps(engine, json_prompt, n, schema_grammar(PEOPLE), gbnf)[0],
            "free_tools": lambda: _tps(engine, tool_prompt, n, None)[0],
            "forced": lambda: _tps(engine, tool_prompt, n, forced_call_grammar([TOOL]))[0],
            "forced_noff": lambda: _tps(engine, tool_prompt, n, forced_call_grammar([TOOL]), fast_forward=False)[0],
            "auto": lambda: _tps(engine, tool_prompt, n, lazy_call_grammar([TOOL]))[0],
        }, repeat)
        rejected = _tps(engine, json_prompt, n, schema_grammar(PEOPLE))[1]
        chain = _in_chain_tps(path, json_prompt, min(n, 128), gbnf, engine.info.n_threads)
        rows.append((label, runs, rejected, chain))
        setup.append((label, engine.vocab.n_tokens, *_setup_costs(engine)))
        engine.close()

    print(f"## JSON and tool calls: decode tokens/s against free decoding ({n} tokens each, same model, same run)")
    print("| model | free (JSON prompt) | JSON schema | ratio | without fast-forward | ratio "
          "| JSON via GBNF, same loop | ratio "
          "| JSON via GBNF in llama-cpp-python's chain | ratio | free (tool prompt) | forced tool call "
          "| ratio | without fast-forward | ratio | auto tools | ratio | tokens the JSON grammar rejected |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for label, r, rejected, chain in rows:
        f, ft = r["free"], r["free_tools"]
        print(f"| {label} | {f:.1f} | {r['json']:.1f} | **{r['json'] / f:.3f}×** | {r['json_noff']:.1f} | "
              f"{r['json_noff'] / f:.3f}× | {r['gbnf']:.1f} | "
              f"{r['gbnf'] / f:.3f}× | {chain:.1f} | {chain / f:.3f}× | {ft:.1f} | {r['forced']:.1f} | "
              f"**{r['forced'] / ft:.3f}×** | {r['forced_noff']:.1f} | {r['forced_noff'] / ft:.3f}× | "
              f"{r['auto']:.1f} | **{r['auto'] / ft:.3f}×** | {100 * rejected:.0f} % |")
    print()
    print("## grammar set-up (the first constrained token waits for it)")
    print("| model | vocabulary | tokenizer, first use ever | tokenizer, pieces cached | 50-property schema compile |")
    print("|---|---|---|---|---|")
    for label, n_vocab, cold, warm, compile_s in setup:
        print(f"| {label} | {n_vocab} | {cold * 1000:.0f} ms | {warm * 1000:.0f} ms | {compile_s * 1000:.1f} ms |")
    print()


def _setup_costs(engine: Engine) -> tuple[float, float, float]:
    """Tokenizer build without and with the pieces cache, and a 50-property compile."""
    from hermes_cli.engine.grammars import _pieces_cache

    cache = _pieces_cache(engine.info.path)
    if cache is not None:
        cache.unlink(missing_ok=True)
    t0 = time.perf_counter()
    Grammars(engine.vocab, engine.info.path).tokenizer()
    cold = time.perf_counter() - t0
    fresh = Grammars(engine.vocab, engine.info.path)
    t0 = time.perf_counter()
    fresh.tokenizer()
    warm = time.perf_counter() - t0
    grammar = schema_grammar(FIFTY)
    t0 = time.perf_counter()
    fresh.matcher(grammar)
    return cold, warm, time.perf_counter() - t0
