"""`--parallel`: B prompts decoded together, against llama.cpp's own llama-batched-bench
at the same sizes; and --parallel 4 with a JSON schema on every line against the same
batch without schemas (each slot checks its own grammar state token by token)."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import time
from pathlib import Path

from benchmarks.common import SAMPLING, SEED, interleaved, tool
from benchmarks.modes import PEOPLE
from hermes_cli.engine.model import Engine
from hermes_cli.engine.parallel import ParallelDecoder, ParallelJob
from hermes_cli.engine.params import Grammar, SamplingParams
from hermes_cli.modes.json_grammar import schema_grammar


def batched_bench(model: Path, sizes: list[int], threads: int) -> dict[int, float]:
    """llama-batched-bench's total tokens/s (S t/s) per batch size, if it was built."""
    exe = tool("llama-batched-bench")
    if exe is None:
        return {}
    proc = subprocess.run([exe, "-m", str(model), "-c", "4096", "-b", "2048", "-ub", "512",
                           "-npp", "128", "-ntg", "64", "-npl", ",".join(map(str, sizes)),
                           "-t", str(threads)], capture_output=True, text=True, timeout=1800)
    out = {}
    for line in proc.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 10 and re.fullmatch(r"\d+", cells[0]) and cells[0] == "128":
            out[int(cells[2])] = float(cells[9])
    return out


def _run(engine: Engine, b: int, prompts: list[list[int]], params: SamplingParams,
         grammar: Grammar | None, gen: int) -> float:
    """Total tokens/s (prompt + generated) for b jobs of one prompt each."""
    decoder = ParallelDecoder(engine, b)
    jobs = [ParallelJob(i, prompts[i], params, grammar) for i in range(b)]
    t0 = time.perf_counter()
    results = list(decoder.run(lambda: jobs.pop(0) if jobs else None))
    elapsed = time.perf_counter() - t0
    decoder.close()
    # a schema answer may be closed to fit a few tokens before `gen` (engine/slot.py)
    done = {i: r.completion_tokens for i, r in results}  # type: ignore[union-attr]
    assert all(gen - 8 <= n <= gen for n in done.values()), done
    return sum(len(prompts[i]) + done[i] for i in range(b)) / elapsed


def section(models: list[tuple[Path, str]], sizes: list[int], repeat: int) -> None:
    for path, label in models:
        engine = Engine.load(path, n_ctx=4096, n_seq_max=max(sizes) + 1)
        base = engine.tokenize(" ".join(f"w{i}" for i in range(400)))
        prompts = [engine.bos_prefix() + base[i:i + 127] for i in range(max(sizes))]
        # llama-batched-bench does not sample: greedy without penalties is the closest
        greedy = SamplingParams(temperature=0, repeat_penalty=1.0, max_tokens=64, ignore_eos=True)
        ours = {b: max(_run(engine, b, prompts, greedy, None, 64) for _ in range(repeat)) for b in sizes}
        theirs = batched_bench(path, sizes, engine.info.n_threads)
        print(f"## --parallel: B prompts × (128 prompt + 64 generated tokens), {label}")
        print("| B | hermes total tok/s | vs B=1 | llama-batched-bench S t/s | hermes / llama.cpp |")
        print("|---|---|---|---|---|")
        for b in sizes:
            ref = theirs.get(b)
            print(f"| {b} | {ours[b]:.1f} | {ours[b] / ours[sizes[0]]:.2f}× | "
                  f"{f'{ref:.1f}' if ref else 'not built'} | {f'{ours[b] / ref:.2f}×' if ref else '–'} |")
        print()
        sampled = SamplingParams(**SAMPLING, max_tokens=96, seed=SEED, ignore_eos=True)
        engine.grammars.tokenizer()  # built once per model, not timed here
        runs = interleaved({
            "text": lambda: _run(engine, 4, prompts, sampled, None, 96),
            "schema": lambda: _run(engine, 4, prompts, sampled, schema_grammar(PEOPLE), 96),
            "schema_noff": lambda: _run(engine, 4, prompts, dataclasses.replace(sampled, fast_forward=False),
                                        schema_grammar(PEOPLE), 96),
        }, repeat)
        print(f"--parallel 4, 96 tokens each, {label}: with a schema on every line "
              f"{runs['schema']:.1f} tok/s (with `--no-fast-forward` {runs['schema_noff']:.1f}), without "
              f"{runs['text']:.1f} tok/s: **{runs['schema'] / runs['text']:.3f}×** "
              f"({runs['schema_noff'] / runs['text']:.3f}× without fast-forward)")
        print()
        engine.close()
