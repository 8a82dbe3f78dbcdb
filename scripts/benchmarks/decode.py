"""Free decoding speed: the hermes engine against llama.cpp itself (llama-bench tg, which
does no sampling; llama-completion, which samples with the same settings) and against
raw llama-cpp-python (`Llama.generate`, what hermes used before its own loop)."""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks.common import SAMPLING, SEED, interleaved, llama_bench_tg, llama_completion_tps
from hermes_cli.engine.model import Engine
from hermes_cli.engine.params import SamplingParams
from hermes_cli.prompt.chatml import ChatML
from hermes_cli.prompt.messages import Message

PROMPT = "Tell me a long story about a lighthouse keeper."


def params(n: int) -> SamplingParams:
    return SamplingParams(**SAMPLING, max_tokens=n, seed=SEED, ignore_eos=True)


def engine_tps(engine: Engine, prompt: list[int], n: int) -> float:
    engine.forget()
    result = engine.generate(prompt, params(n)).consume()
    assert result.completion_tokens == n, result.completion_tokens
    return (n - 1) / result.generation_seconds


def raw_generate_tps(model: Path, prompt: list[int], n: int, threads: int, n_ctx: int) -> float:
    """llama-cpp-python's own loop on the same prompt and settings, end tokens banned."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(model), n_ctx=n_ctx, n_threads=threads,
                          n_threads_batch=threads, verbose=False, seed=SEED)
    eog = [t for t in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(llm._model.vocab, t)]

    def ban(_ids, logits):
        logits[eog] = float("-inf")
        return logits

    def run() -> float:
        llm.set_seed(SEED)
        llm.n_tokens = 0
        count, first = 0, 0.0
        for _token in llm.generate(prompt, reset=False, logits_processor=[ban], temp=SAMPLING["temperature"],
                                   top_k=SAMPLING["top_k"], top_p=SAMPLING["top_p"],
                                   min_p=SAMPLING["min_p"], repeat_penalty=SAMPLING["repeat_penalty"]):
            count += 1
            if count == 1:
                first = time.perf_counter()
            if count == n:
                break
        return (n - 1) / (time.perf_counter() - first)

    try:
        return max(run() for _ in range(2))
    finally:
        llm.close()


def section(models: list[tuple[Path, str]], n: int, repeat: int) -> None:
    print(f"## free decoding, tokens/s ({n} tokens, sampling {SAMPLING}, end tokens banned)")
    print("| model | llama-bench tg (no sampling) | llama-completion (same sampler) | raw Llama.generate "
          "| hermes | hermes / llama-bench | hermes / llama-completion | hermes / raw |")
    print("|---|---|---|---|---|---|---|---|")
    for path, label in models:
        engine = Engine.load(path, n_ctx=n + 256)
        threads = engine.info.n_threads
        prompt = ChatML(engine).render([Message("user", PROMPT)])
        ours = interleaved({"hermes": lambda: engine_tps(engine, prompt, n)}, repeat)["hermes"]
        engine.close()
        raw = raw_generate_tps(path, prompt, n, threads, n + 256)
        bench = llama_bench_tg(path, n, threads, repeat)
        completion = llama_completion_tps(path, PROMPT, n, threads)

        def cell(x: float | None) -> str:
            return f"{x:.1f}" if x else "not built"

        def ratio(x: float | None) -> str:
            return f"{ours / x:.3f}×" if x else "–"

        print(f"| {label} | {cell(bench)} | {cell(completion)} | {raw:.1f} | {ours:.1f} | "
              f"{ratio(bench)} | {ratio(completion)} | {ours / raw:.3f}× |")
    print()
