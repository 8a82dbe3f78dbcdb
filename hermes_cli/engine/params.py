"""The engine's plain data: sampling settings, what a generation produced, what was loaded.

No llama_cpp here: the core and the front ends import these types freely.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hermes_cli.errors import SettingError

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
    # OpenAI's: a token's logit lowered by frequency_penalty per time it came in the last 64
    # tokens, and by presence_penalty once it came at all (negative: raised). 0 = off.
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    max_tokens: int | None = None  # None: until an end token or the context is full
    seed: int | None = None  # None: a fresh random seed for every generation
    # Never end by choice (llama.cpp's --ignore-eos): benchmarks compare equal lengths.
    ignore_eos: bool = False
    # Tokens a grammar forces are appended without sampling and evaluated in one batch
    # (engine/slot.py); off only to compare (--no-fast-forward).
    fast_forward: bool = True
    # A reasoning model's thinking, in tokens, before `</think>` is forced (engine/thinking.py;
    # None: as long as it likes).
    think_budget: int | None = None


# What each sampling value may be: type, lowest, highest, whether null means "default".
SAMPLING_LIMITS: dict[str, tuple[type, float, float | None, bool]] = {
    "temperature": (float, 0.0, 100.0, False), "top_p": (float, 0.0, 1.0, False),
    "top_k": (int, 0, 1_000_000, False), "min_p": (float, 0.0, 1.0, False),
    "repeat_penalty": (float, 0.0, 100.0, False), "frequency_penalty": (float, -2.0, 2.0, False),
    "presence_penalty": (float, -2.0, 2.0, False), "max_tokens": (int, 1, 10_000_000, True),
    "seed": (int, 0, 2**31 - 1, True), "fast_forward": (bool, 0, 1, False),
    "think_budget": (int, 0, 10_000_000, True),
}


# What loading may ask of llama.cpp (beyond these it crashes rather than refuses: 100,000
# threads segfault, 30,000 hang; a context over 2^32 wraps to a tiny one and aborts).
# GGML_MAX_N_THREADS is 512; 2^24 tokens is past every model's trained context.
LOAD_LIMITS: dict[str, tuple[int, int]] = {
    "ctx": (0, 2**24), "threads": (1, 512), "gpu_layers": (-1, 100_000),
}


def check_load(name: str, value: int | None, *, label: str | None = None) -> None:
    """Raise SettingError (exit 2) when `value` is outside LOAD_LIMITS[name] (None: default);
    `label` is how the user wrote the name (default: the option, `--gpu-layers`)."""
    if value is None:
        return
    low, high = LOAD_LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SettingError(f"{label or '--' + name.replace('_', '-')} must be between {low} and {high:,}, "
                           f"not {value}")


def sampling_problem(name: str, value: Any) -> str | None:
    """Why `value` cannot be the sampling setting `name` (None: it can). Values come from
    batch lines, saved sessions and config files, so they are checked before llama.cpp
    sees them (a float where C wants an int is a ctypes error, not a message)."""
    if name not in SAMPLING_LIMITS:
        return "is not a sampling setting"
    kind, low, high, nullable = SAMPLING_LIMITS[name]
    if kind is bool:
        return None if isinstance(value, bool) else f"must be true or false, not {json.dumps(value)}"
    if value is None:
        return None if nullable else "must be a number, not null"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be {'an integer' if kind is int else 'a number'}, not {json.dumps(value)}"
    if kind is int and not (isinstance(value, int) or float(value).is_integer()):
        return f"must be an integer, not {value}"
    if value != value or value < low or (high is not None and value > high):  # NaN too
        bounds = f"between {_number(low)} and {_number(high)}" if high is not None else f"at least {_number(low)}"
        return f"must be {bounds}, not {value}"
    return None


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def check_sampling(name: str, value: Any, *, label: str | None = None) -> None:
    """Raise SettingError (exit 2) when `value` cannot be the sampling setting `name`;
    `label` is how the user wrote the name (`--top-k`, `/set top_k`)."""
    problem = sampling_problem(name, value)
    if problem:
        raise SettingError(f"{label or name} {problem}")


def sampling_from(values: dict[str, Any]) -> SamplingParams:
    """SamplingParams from checked values (ints where C wants ints); SettingError (a
    ValueError) names the first bad one."""
    clean: dict[str, Any] = {}
    for name, value in values.items():
        check_sampling(name, value)
        kind = SAMPLING_LIMITS[name][0]
        clean[name] = value if value is None else kind(value)
    return SamplingParams(**clean)


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
    # Text that, written while the grammar holds an unfinished span, ends the generation
    # there: the model evidently ended the span itself (a call's closing tag written inside
    # its argument string). The result says `abandoned`; the caller reads what was meant.
    abandon: str | None = None


@dataclass(frozen=True)
class Thinking:
    """How a reasoning model's reply is watched (engine/thinking.py): `budget` tokens of
    thinking at most (None: no bound); `started`: the prompt opened the section, so the
    reply begins inside it."""

    budget: int | None = None
    started: bool = False


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
    prompt_loaded: int = 0  # of the reused, those loaded from a kept prefix (engine/prompt_cache.py)
    forced: int = 0  # tokens the grammar forced, taken without sampling (fast-forward)
    # Near its limit the grammar closed what was open (engine/slot.py): that many tokens
    # of a short valid ending, because of `closed_by` ("length": --max-tokens; "context").
    closed: int = 0
    closed_by: str | None = None
    generated: int | None = None  # a served engine's count (its ids are not sent to us)
    # The generation ended inside a span its grammar had not finished (a forced call cut
    # by the limit, even inside its opening tag): the grammar's word, not the text's.
    grammar_open: bool = False
    # A served engine that sent no usage: prompt counts unknown, the reply's counted in
    # stream events (an estimate), and said so rather than shown as 0.
    usage_known: bool = True
    # Whether a grammar of ours held the text (a model loaded here). A served engine's text
    # was only checked here: a bad answer is then the writer's fault, not the schema's
    # limit (its backend says so by setting this; the reply logics read it).
    enforced: bool = True
    # A reasoning model's `<think>` section, apart from `text`, the answer (prompt/reasoning.py;
    # set by core/reply.py). `token_ids` are all the reply's, thinking included.
    reasoning: str | None = None
    # Ended early: the grammar's `abandon` text was written inside its unfinished span.
    abandoned: bool = False

    @property
    def from_server(self) -> bool:
        """Written by a served engine (its own count, no ids, no grammar of ours)."""
        return self.generated is not None

    @property
    def completion_tokens(self) -> int:
        return self.generated if self.generated is not None else len(self.token_ids)

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
    offload: str | None = None  # what the default --gpu-layers chose, and why
    offload_partial: bool = False  # the model did not fit: only some layers are on the GPU
