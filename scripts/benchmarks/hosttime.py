"""Host time per token: what hermes adds to llama.cpp's own work on each token.

Timing whole decodes cannot show a few microseconds under a decode step's noise on a
small, busy machine, so the path is timed twice: as it runs, and with `llama_decode`
replaced by a function that returns at once (the logits of the prompt stay in place, so
sampling works as usual). With the decode gone, what is left is the host path: the C
sampler chain, the slot's step, the generation loop and, for `ask`, the events, the
printer and a write and flush per token to stdout (here /dev/null). The greedy row
compares whole decodes with llama-bench and with a bare ctypes `llama_decode` loop in the
same context, best of several runs each.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import SAMPLING, SEED, llama_bench_tg
from hermes_cli.core.backends import LocalBackend
from hermes_cli.core.reply import stream
from hermes_cli.engine.model import Engine
from hermes_cli.engine.params import SamplingParams
from hermes_cli.modes.reply_mode import ReplyMode
from hermes_cli.prompt.messages import Message

MESSAGES = [Message("user", "Tell me a long story about a lighthouse keeper.")]


def _params(n: int, temperature: float) -> SamplingParams:
    sampling = {**SAMPLING, "temperature": temperature}
    return SamplingParams(**sampling, max_tokens=n, seed=SEED, ignore_eos=True)


def _engine_loop(engine: Engine, n: int, temperature: float) -> float:
    backend = LocalBackend(engine)
    t0 = time.perf_counter()
    result = backend.start(MESSAGES, _params(n, temperature), None)
    for _text in result:
        pass
    return (time.perf_counter() - t0) / n * 1e6


def _ask_path(engine: Engine, n: int, temperature: float) -> float:
    from hermes_cli.cli.ask import _Printer

    backend = LocalBackend(engine)
    mode = ReplyMode()
    logic = mode.logic(mode.messages(None, MESSAGES), _params(n, temperature), approve=lambda _c: True)
    with open(os.devnull, "w") as out:
        printer = _Printer(out, sys.stderr, backend, "text", stats=False, verbose=False, schema_only=False)
        t0 = time.perf_counter()
        printer.show(stream(backend, logic))
        return (time.perf_counter() - t0) / n * 1e6


def _decode_stubbed(engine: Engine, fn: Callable[[], float]) -> float:
    """`fn` with llama.cpp's decode swapped for a no-op. The prompt is evaluated for real
    first: the generation then reuses it, and the sampler reads its logits."""
    c = engine._c
    engine.forget()
    engine.evaluate(LocalBackend(engine).template.render(MESSAGES))
    real = c.llama_decode
    c.llama_decode = lambda _ctx, _batch: 0
    try:
        return fn()
    finally:
        c.llama_decode = real
        engine.forget()


def _bare_decode_us(engine: Engine, n: int) -> float:
    """A ctypes loop of one-token llama_decode calls in the engine's own context."""
    c = engine._c
    engine.forget()
    engine.evaluate(LocalBackend(engine).template.render(MESSAGES))
    token = (c.llama_token * 1)(1)
    batch = c.llama_batch_get_one(token, 1)
    t0 = time.perf_counter()
    for _ in range(n):
        c.llama_decode(engine.ctx, batch)
    elapsed = time.perf_counter() - t0
    engine.forget()
    return elapsed / n * 1e6


def _greedy_us(engine: Engine, n: int) -> float:
    engine.forget()
    result = engine.generate(LocalBackend(engine).template.render(MESSAGES), _params(n + 1, 0.0)).consume()
    return result.generation_seconds / n * 1e6


def section(models: list[tuple[Path, str]], n: int, repeat: int) -> None:
    print(f"## host time per token, µs ({n} tokens; llama_decode stubbed out: what is left is hermes's path)")
    print("| model | engine loop, greedy | engine loop, sampled | `ask` to stdout, greedy | `ask` to stdout, "
          "sampled | decode step, llama-bench tg | bare ctypes decode loop | hermes greedy, whole step | "
          "hermes / llama-bench |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path, label in models:
        engine = Engine.load(path, n_ctx=n + 256)
        try:
            def best(fn: Callable[[], float]) -> float:
                return min(fn() for _ in range(repeat))

            stubbed = {(kind, t): best(lambda k=kind, t=t: _decode_stubbed(  # type: ignore[misc]
                engine, lambda: (_engine_loop if k == "engine" else _ask_path)(engine, n, t)))
                for kind in ("engine", "ask") for t in (0.0, SAMPLING["temperature"])}
            bare = best(lambda: _bare_decode_us(engine, n))
            greedy = best(lambda: _greedy_us(engine, n))
            threads = engine.info.n_threads
        finally:
            engine.close()
        tg = llama_bench_tg(path, n, threads, max(repeat, 3))
        bench_us = 1e6 / tg if tg else None
        print(f"| {label} | {stubbed['engine', 0.0]:.1f} | {stubbed['engine', SAMPLING['temperature']]:.1f} | "
              f"{stubbed['ask', 0.0]:.1f} | {stubbed['ask', SAMPLING['temperature']]:.1f} | "
              f"{f'{bench_us:.1f}' if bench_us else 'not built'} | {bare:.1f} | {greedy:.1f} | "
              f"{f'{bench_us / greedy:.3f}×' if bench_us else '–'} |")
    print()
