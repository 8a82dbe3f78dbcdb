"""How many layers to put on the GPU by default: all of them when the model, its KV
cache and llama.cpp's working buffers fit in the GPU's free memory; otherwise as many as
fit (llama.cpp offloads the last layers first), instead of failing to load.

llama-cpp-python does not bind llama.cpp's own parameter fitting, so the sizes come from
the GGUF header: each layer's tensors (the distances between their data offsets), the
KV cache per layer (engine/hardware.py), and a reserve for compute buffers.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hermes_cli.engine import gguf
from hermes_cli.engine.hardware import kv_cache_bytes

_BLOCK = re.compile(r"^blk\.(\d+)\.")
RESERVE_BYTES = 512 * 1024 * 1024  # compute buffers, CUDA context: what llama.cpp adds


@dataclass(frozen=True)
class OffloadPlan:
    layers: int  # for n_gpu_layers: -1 = all (the output layer too)
    offloaded: int  # layers that go to the GPU, out of `total`
    total: int  # the model's layers + the output layer
    needed: int  # bytes the whole model needs on the GPU (weights, KV cache, reserve)
    free: int

    def describe(self) -> str:
        gb = 1e9
        if self.layers == -1:
            return (f"all {self.total} layers on the GPU ({self.needed / gb:.1f} GB needed, "
                    f"{self.free / gb:.1f} GB free)")
        return (f"{self.offloaded} of {self.total} layers on the GPU: the whole model needs "
                f"{self.needed / gb:.1f} GB with its KV cache, {self.free / gb:.1f} GB is free "
                "(--gpu-layers N to choose)")


@dataclass(frozen=True)
class LayerSizes:
    blocks: dict[int, int]  # bytes per repeating layer
    output: int  # the output layer (norm and projection)
    embeddings: int  # token_embd: stays on the CPU unless the output projection shares it
    tied: bool  # no output.weight: the projection is the embeddings, copied to the GPU


def layer_sizes(paths: list[Path]) -> LayerSizes:
    blocks: dict[int, int] = defaultdict(int)
    output = embeddings = 0
    tied = True
    for path in paths:
        for tensor in gguf.read_tensors(path):
            m = _BLOCK.match(tensor.name)
            if m:
                blocks[int(m.group(1))] += tensor.nbytes
            elif tensor.name.startswith("output"):
                output += tensor.nbytes
                tied = tied and tensor.name != "output.weight"
            elif tensor.name.startswith("token_embd"):
                embeddings += tensor.nbytes
    return LayerSizes(dict(blocks), output, embeddings, tied)


_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)


def model_parts(path: Path) -> list[Path]:
    """Every part of a split GGUF (llama.cpp opens the first), or just the file."""
    m = _SPLIT.search(path.name)
    if not m:
        return [path]
    stem = path.name[: m.start()]
    parts = sorted(path.parent.glob(f"{stem}-*-of-{m.group(2)}.gguf"))
    return parts or [path]


def plan(meta: dict[str, Any], paths: list[Path], n_ctx: int, free: int) -> OffloadPlan:
    """The layers that fit in `free` bytes of GPU memory, the last layers first."""
    sizes = layer_sizes(paths)
    blocks = sizes.blocks
    n_layer = len(blocks)
    kv = kv_cache_bytes(meta, n_ctx) or 0
    kv_layer = kv // n_layer if n_layer else 0
    # With every layer offloaded llama.cpp also moves the output layer to the GPU (and,
    # when the projection is the embeddings, a copy of them).
    output = sizes.output + (sizes.embeddings if sizes.tied else 0)
    full = sum(blocks.values()) + n_layer * kv_layer + output + RESERVE_BYTES
    if full <= free:
        return OffloadPlan(-1, n_layer + 1, n_layer + 1, full, free)
    room = free - RESERVE_BYTES
    fitted = 0
    for index in sorted(blocks, reverse=True):
        cost = blocks[index] + kv_layer
        if cost > room:
            break
        room -= cost
        fitted += 1
    return OffloadPlan(fitted, fitted, n_layer + 1, full, free)
