"""The engine's plain data: sampling settings, what a generation produced, what was loaded.

No llama_cpp here: the core and the front ends import these types freely.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# A model whose trained context is huge (128k) would allocate gigabytes of KV cache by
# default; above this the user asks for more with --ctx.
DEFAULT_CTX_CAP = 16384


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings. Defaults follow the Hermes model card (temp 0.8, rep. 1.1)."""

    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    max_tokens: int | None = None  # None: until an end token or the context is full
    seed: int | None = None  # None: a fresh random seed for every generation
    # Never end by choice (llama.cpp's --ignore-eos): benchmarks compare equal lengths.
    ignore_eos: bool = False


def reply_limit(params: SamplingParams, room: int) -> tuple[int, str]:
    """How many tokens a reply may have when `room` are left in the context, and the
    stop reason once it has them ("length": --max-tokens; "context": the room)."""
    if params.max_tokens is not None and params.max_tokens <= room:
        return params.max_tokens, "length"
    return room, "context"


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


@dataclass(frozen=True)
class Grammar:
    """What constrains a reply, in llguidance's terms (the engine compiles it).

    `kind` is "json_schema" (`source`: the schema as JSON text) or "lark" (`source`: an
    llguidance Lark grammar, which may embed JSON Schema with `%json {...}`).

    With a `trigger` the grammar is lazy: the model writes freely until it has written
    the trigger text (Hermes's `<tool_call>`), then the grammar holds what follows; when
    the grammar is complete, the text is free again. A lazy `source` defines a rule
    `rest` for what follows the trigger; if the token that completes the trigger ends
    inside the trigger's text, the rest of that text is held to the grammar too.
    """

    kind: str
    source: str
    trigger: str | None = None


@dataclass
class GenerationResult:
    """What one generation produced and cost."""

    text: str
    token_ids: list[int]
    finish_reason: str  # "stop" | "length" | "context" | "interrupted"
    prompt_tokens: int
    prompt_evaluated: int
    prompt_reused: int
    prompt_seconds: float  # from the call to the first token (time to first token)
    generation_seconds: float  # from the first token to the last
    resampled: int = 0  # tokens the grammar rejected and the sampler drew again

    @property
    def completion_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def prompt_tokens_per_second(self) -> float:
        return self.prompt_evaluated / self.prompt_seconds if self.prompt_seconds > 0 else 0.0

    @property
    def tokens_per_second(self) -> float:
        n = self.completion_tokens - 1  # the first token's time is in prompt_seconds
        return n / self.generation_seconds if n > 0 and self.generation_seconds > 0 else 0.0


@dataclass
class EngineInfo:
    """Facts about the loaded model and build, for `--stats`, `info` and `/model`."""

    path: Path
    n_ctx: int
    n_ctx_train: int
    n_gpu_layers: int
    n_threads: int
    gpu_offload_supported: bool
    metadata: dict[str, Any] = field(default_factory=dict)
    verbose: bool = False  # llama.cpp's own output shown (else silenced at fd level)
