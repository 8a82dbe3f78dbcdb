"""One-shot structured answers as a user runs them (issue 22): whole `hermes ask`
processes, a JSON answer (8-property schema) and a forced tool call against a free
answer of the same number of tokens, all sampled, over several seeds.

The waits a constrained one-shot answer has that a free one has not: the grammar
tokenizer (built while llama.cpp loads the model, from the pieces an earlier process
kept), the grammar's compile, and the longer prompt (the Hermes format quotes the schema
or the tools in the system prompt; its KV state is kept on disk by the prompt cache).
Each row is the median over seeds of paired runs, the free answer cut at the JSON
answer's token count (--max-tokens) after a prompt that does not stop sooner; the
cache directory is a fresh one, primed by one run, so the tokenizer's pieces are kept
as after any first use, and "cold" runs pass --no-prompt-cache.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"}, "country": {"type": "string"}, "population": {"type": "integer"},
        "area_km2": {"type": "number"}, "famous_for": {"type": "array", "items": {"type": "string"}},
        "river": {"type": "string"}, "founded": {"type": "string"}, "mayor": {"type": "string"},
    },
    "required": ["name", "country", "population", "area_km2", "famous_for", "river", "founded", "mayor"],
}
TOOLS = [{"type": "function", "function": {
    "name": "city_facts", "description": "Look up facts about a city.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "country": {"type": "string"},
        "topics": {"type": "array", "items": {"type": "string"}}},
        "required": ["city", "country", "topics"]}}}]
QUESTION = "Describe Paris."
FREE_QUESTION = "Describe Paris in detail: its history, its rivers, its people and its food."
_REPLY = re.compile(r"reply (\d+) tokens")


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}… exit {proc.returncode}: {proc.stderr.decode()[-300:]}")
    m = _REPLY.findall(proc.stderr.decode("utf-8", errors="replace"))
    return wall, int(m[-1]) if m else 0


def section(real: list[tuple[Path, str]], seeds: int) -> None:
    exe = str(Path(sys.executable).parent / "hermes")
    print("## one-shot structured answers, whole processes (median over seeds; free = same token count)")
    print("| model | answer | tokens | free s | cold s (no prompt cache) | warm s | speed warm vs free "
          "| cold vs free |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        schema = Path(tmp) / "schema.json"
        schema.write_text(json.dumps(SCHEMA))
        env = {**os.environ, "HERMES_CACHE_DIR": str(Path(tmp) / "cache")}
        for path, label in real:
            base = [exe, "ask", "-m", str(path), "-q", "--stats"]
            kinds = {"JSON (--schema)": ["--schema", str(schema)],
                     "forced call (--tools-json)": ["--tools-json", json.dumps(TOOLS),
                                                    "--tool-choice", "required"],
                     "forced call, arguments first": ["--tools-json", json.dumps(TOOLS), "--tool-choice",
                                                      "required", "--call-format", "arguments-first"]}
            for kind, extra in kinds.items():
                _run([*base, QUESTION, *extra, "--seed", "1", "--max-tokens", "160"], env)  # primes the caches
                free, cold, warm, counts = [], [], [], []
                for seed in range(1, seeds + 1):
                    s = ["--seed", str(seed), "--max-tokens", "160"]
                    w, n = _run([*base, QUESTION, *extra, *s], env)
                    c, _ = _run([*base, QUESTION, *extra, *s, "--no-prompt-cache"], env)
                    f, nf = _run([*base, FREE_QUESTION, "--seed", str(seed), "--max-tokens", str(n)], env)
                    if nf != n:
                        print(f"<!-- {label} seed {seed}: the free answer stopped at {nf} of {n} tokens -->")
                    warm.append(w)
                    cold.append(c)
                    free.append(f)
                    counts.append(n)
                fm, cm, wm = median(free), median(cold), median(warm)
                print(f"| {label} | {kind} | {min(counts)}–{max(counts)} | {fm:.2f} | {cm:.2f} | {wm:.2f} | "
                      f"**{fm / wm:.2f}×** | {fm / cm:.2f}× |")
    print()
