"""`hermes batch`: 100 prompts sharing a 1,000-token system prompt, against a loop of
`hermes ask` processes and the same loop in one process without prefix reuse."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import SEED, tm
from hermes_cli.engine.model import Engine
from hermes_cli.engine.params import SamplingParams
from hermes_cli.prompt.chatml import ChatML
from hermes_cli.prompt.messages import Message


def section(models_dir: Path, n_prompts: int) -> None:
    from hermes_cli.core import batch as batch_mod
    from hermes_cli.core.batch_run import run_batch

    model = tm.write_model(models_dir / "batch-random.gguf", kind="random", embedding=256,
                           blocks=2, context_length=4096)
    engine = Engine.load(model)
    system = "You are a helpful assistant. " * 200
    system_ids = engine.tokenize(system)
    system = engine.detokenize(system_ids[:1000], special=False)
    # 32 bytes: 32 tokens with this byte-level vocabulary
    questions = [f"Question {i:04d}: what about it?"[:32].ljust(32, "?") for i in range(n_prompts)]
    params = SamplingParams(seed=SEED, max_tokens=32, ignore_eos=True)
    chat = ChatML(engine)

    # (a) hermes batch, in this process (the model is already loaded: its load is timed in (b))
    items = batch_mod.read_items(io.StringIO("\n".join(questions) + "\n"))
    out = io.StringIO()
    t0 = time.perf_counter()
    from hermes_cli.core.backends import LocalBackend

    summary = run_batch(LocalBackend(engine), items, batch_mod.ResultWriter(None, out), set(),
                        batch_mod.BatchOptions(system=system, params=params))
    batch_s = time.perf_counter() - t0
    recs = [json.loads(x) for x in out.getvalue().splitlines()]
    evaluated = [r["prompt_evaluated"] for r in recs]

    # (c) the same loop in one process, without prefix reuse
    t0 = time.perf_counter()
    for q in questions:
        engine.forget()
        engine.generate(chat.render([Message("system", system), Message("user", q)]), params).consume()
    noreuse_s = time.perf_counter() - t0

    # (b) a loop of `hermes ask` processes (a sample of them, timed per prompt)
    exe = str(Path(sys.executable).parent / "hermes")
    sample = questions[: min(20, n_prompts)]
    t0 = time.perf_counter()
    for q in sample:
        subprocess.run([exe, "ask", q, "-m", str(model), "-s", system, "--max-tokens", "32",
                        "--seed", str(SEED)], check=True, capture_output=True, stdin=subprocess.DEVNULL)
    procs_s = (time.perf_counter() - t0) / len(sample) * n_prompts
    system_tokens = len(chat.render([Message("system", system)], add_generation_prompt=False))
    engine.close()
    print(f"## batch: {n_prompts} prompts, a shared {system_tokens}-token "
          "system prompt, 32-token questions, 32 tokens out (random tiny model)")
    print("| how | seconds | prompts/s | vs hermes batch |")
    print("|---|---|---|---|")
    print(f"| `hermes batch` | {batch_s:.2f} | {n_prompts / batch_s:.1f} | 1.0× |")
    print(f"| the same loop in one process, no prefix reuse | {noreuse_s:.2f} | "
          f"{n_prompts / noreuse_s:.1f} | {noreuse_s / batch_s:.1f}× slower |")
    print(f"| a loop of `hermes ask` processes (timed on {len(sample)}, scaled) | {procs_s:.2f} | "
          f"{n_prompts / procs_s:.1f} | {procs_s / batch_s:.1f}× slower |")
    print()
    print(f"prompt tokens evaluated per line: first {evaluated[0]}, then "
          f"{min(evaluated[1:])}–{max(evaluated[1:])} (each line's own tokens); "
          f"{summary.done} done")
    print()
