"""The inference engine: the only module that imports llama_cpp.

One streaming interface serves `ask`, `chat` and `batch`, so the per-token loop, stop
handling and KV-cache reuse exist once:

    engine = Engine.load(path)
    gen = engine.generate(prompt_ids, SamplingParams(...))
    for text in gen:          # decoded text, as soon as it is valid UTF-8
        ...
    gen.result                # stop reason, token counts, reuse, timings

Design choices, each from a measured fact in shared/reference/llama-cpp-python-notes.md:
- the low-level `Llama.generate` path plus our own incremental UTF-8 decoder, because
  `create_chat_completion(stream=True)` re-decodes a growing tail on invalid UTF-8
  (O(n^2): 1000 tokens took 230 s). Per token we do a dict lookup and one decoder step;
- the KV prefix is matched here, explicitly, and `generate(reset=False)` gets only the
  new tokens, so the evaluated/reused counts we report are facts, not guesses;
- every end-of-generation token the vocabulary declares stops generation
  (`llama_vocab_is_eog`), not just EOS: Hermes Θ also emits <|eot_id|>, <|end_of_text|>.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import os
import random
import re
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hermes_cli import ggufmeta
from hermes_cli.errors import ContextOverflowError, ModelError, UsageError
from hermes_cli.sysinfo import usable_cpu_count

if TYPE_CHECKING:
    import llama_cpp

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


def _reply_limit(params: SamplingParams, room: int) -> tuple[int, str]:
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


class Generation:
    """A running generation: iterate for text chunks, then read `result`.

    Stopping early (break, `close()`, Ctrl-C) is normal: the result then says
    "interrupted" and the engine's KV cache stays consistent for the next call.
    """

    def __init__(self, engine: Engine, prompt: Sequence[int], params: SamplingParams,
                 grammar: Any | None, strict_utf8: bool = False) -> None:
        self._engine = engine
        self._prompt = list(prompt)
        self._params = params
        self._grammar = grammar
        self._strict_utf8 = strict_utf8
        self._iter: Iterator[str] | None = None
        self.result: GenerationResult | None = None

    def __iter__(self) -> Iterator[str]:
        if self._iter is None:
            self._iter = self._run()
        return self._iter

    def close(self) -> None:
        if self._iter is not None:
            self._iter.close()  # type: ignore[attr-defined]

    def consume(self) -> GenerationResult:
        """Run to the end without streaming; return the result."""
        for _ in self:
            pass
        assert self.result is not None
        return self.result

    def _run(self) -> Iterator[str]:
        engine, llm, params = self._engine, self._engine._llm, self._params
        prompt = self._prompt
        n_ctx = engine.n_ctx
        if len(prompt) >= n_ctx:  # at least one slot must stay free for the reply
            raise ContextOverflowError(len(prompt), n_ctx)
        limit, limit_reason = _reply_limit(params, n_ctx - len(prompt))

        reused = engine._reusable_prefix(prompt)
        llm.n_tokens = reused  # generate(reset=False) evaluates from here, dropping the rest
        llm.set_seed(params.seed if params.seed is not None else random.getrandbits(31))

        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pieces, is_eog = engine._piece_cache, engine._eog_cache
        piece_of, eog_of = engine._token_piece, engine._token_is_eog
        chunks: list[str] = []
        ids: list[int] = []
        reason = "interrupted"
        t_start = time.perf_counter()
        t_first = t_start
        tokens = llm.generate(
            prompt[reused:], reset=False, temp=params.temperature, top_p=params.top_p,
            top_k=params.top_k, min_p=params.min_p, repeat_penalty=params.repeat_penalty,
            grammar=self._grammar,
            logits_processor=engine._processors(params, self._strict_utf8),
        )
        try:
            if limit <= 0:
                reason = limit_reason
                return
            for token in tokens:
                if not ids:
                    t_first = time.perf_counter()
                eog = is_eog.get(token)
                if eog is None:
                    eog = eog_of(token)
                if eog:
                    reason = "stop"
                    break
                ids.append(token)
                piece = pieces.get(token)
                if piece is None:
                    piece = piece_of(token)
                text = decoder.decode(piece)
                if text:
                    chunks.append(text)
                    yield text
                if len(ids) >= limit:
                    reason = limit_reason
                    break
            tail = decoder.decode(b"", final=True)
            if tail:
                chunks.append(tail)
                yield tail
        finally:
            tokens.close()
            t_end = time.perf_counter()
            if not ids:
                t_first = t_end
            self.result = GenerationResult(
                text="".join(chunks), token_ids=ids, finish_reason=reason,
                prompt_tokens=len(prompt), prompt_evaluated=len(prompt) - reused,
                prompt_reused=reused, prompt_seconds=t_first - t_start,
                generation_seconds=t_end - t_first,
            )


class Engine:
    """A loaded GGUF model with one context whose KV cache persists across calls."""

    def __init__(self, llm: llama_cpp.Llama, info: EngineInfo) -> None:
        self._llm = llm
        self.info = info
        import llama_cpp

        self._lib = llama_cpp
        self._vocab = llm._model.vocab
        self._piece_buf = ctypes.create_string_buffer(256)
        self._piece_cache: dict[int, bytes] = {}
        self._eog_cache: dict[int, bool] = {}
        self._eog_ids: list[int] | None = None
        self._utf8_guard: Any | None = None

    # -- loading ----------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        n_ctx: int | None = None,
        n_gpu_layers: int | None = None,
        n_threads: int | None = None,
        verbose: bool = False,
        vocab_only: bool = False,
    ) -> Engine:
        """Load a GGUF file.

        Args:
            n_ctx: context size; None takes the trained length (capped at
                DEFAULT_CTX_CAP), 0 the full trained length.
            n_gpu_layers: None offloads every layer when llama.cpp can use a GPU.
            n_threads: None uses the CPUs this process may run on.
            vocab_only: load only the tokenizer (for --show-prompt): fast, no weights.

        Raises:
            ModelError: missing, not a GGUF, truncated or rejected by llama.cpp.
        """
        path = Path(path)
        meta = ggufmeta.read_metadata(path)
        trained = ggufmeta.trained_context(meta) or 4096
        if n_ctx is None:
            n_ctx = min(trained, DEFAULT_CTX_CAP)
        elif n_ctx == 0:
            n_ctx = trained
        elif n_ctx < 0:
            raise UsageError(f"--ctx must be 0 or more, not {n_ctx}")
        if n_threads is None:
            n_threads = usable_cpu_count()
        elif n_threads < 1:
            raise UsageError(f"--threads must be 1 or more, not {n_threads}")

        import llama_cpp  # heavy: only here

        offload = bool(llama_cpp.llama_supports_gpu_offload())
        if n_gpu_layers is None:
            n_gpu_layers = -1 if offload else 0
        try:
            with _quiet(verbose):
                llm = llama_cpp.Llama(
                    model_path=str(path), n_ctx=n_ctx, n_gpu_layers=n_gpu_layers,
                    n_threads=n_threads, n_threads_batch=n_threads, use_mmap=True,
                    vocab_only=vocab_only, verbose=verbose,
                )
        except (ValueError, RuntimeError, OSError) as e:
            raise ModelError(
                f"llama.cpp could not load {path}: the file may be truncated or corrupt, "
                f"or use an architecture this llama.cpp build does not know ({e})",
                hint="run with --verbose to see llama.cpp's own log",
            ) from None
        info = EngineInfo(
            path=path, n_ctx=n_ctx, n_ctx_train=trained, n_gpu_layers=n_gpu_layers,
            n_threads=n_threads, gpu_offload_supported=offload, metadata=meta, verbose=verbose,
        )
        return cls(llm, info)

    def close(self) -> None:
        """Free the model. Using the engine afterwards raises (llama-cpp-python would
        segfault on a freed context)."""
        if self._llm is not None:
            self._llm.close()
            self._llm = None  # type: ignore[assignment]

    # -- tokens -----------------------------------------------------------------------

    @property
    def n_ctx(self) -> int:
        return self.info.n_ctx

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        """Text to ids, no BOS. `special=False` keeps "<|im_start|>" plain text."""
        return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)

    def bos_prefix(self) -> list[int]:
        """What the tokenizer puts before a sequence: [BOS] for Llama-3, [] for Qwen."""
        return self._llm.tokenize(b"", add_bos=True, special=True)

    def special_token(self, text: str) -> int | None:
        """Id of a control token by its text, or None when the vocabulary lacks it."""
        ids = self.tokenize(text, special=True)
        if len(ids) == 1 and self._token_piece(ids[0], special=True) == text.encode():
            return ids[0]
        return None

    def detokenize(self, ids: Sequence[int], *, special: bool = True) -> str:
        return b"".join(self._token_piece(t, special=special) for t in ids).decode(
            "utf-8", errors="replace"
        )

    def eog_tokens(self) -> list[int]:
        """Every end-of-generation token of the vocabulary (scanned once, then cached)."""
        if self._eog_ids is None:
            n_vocab = self._lib.llama_vocab_n_tokens(self._vocab)
            self._eog_ids = [t for t in range(n_vocab)
                             if self._lib.llama_vocab_is_eog(self._vocab, t)]
        return self._eog_ids

    def _processors(self, params: SamplingParams, strict_utf8: bool) -> list[Any] | None:
        processors = []
        if params.ignore_eos:
            processors.append(self._ban_eog)
        if strict_utf8:
            if self._utf8_guard is None:
                from hermes_cli.utf8guard import Utf8Guard

                n_vocab = self._lib.llama_vocab_n_tokens(self._vocab)
                self._utf8_guard = Utf8Guard([self._token_piece(t) for t in range(n_vocab)])
            processors.append(self._utf8_guard.processor())
        return processors or None

    def _ban_eog(self, _ids: Any, logits: Any) -> Any:
        """Logits processor: every end-of-generation token gets -inf."""
        logits[self.eog_tokens()] = float("-inf")
        return logits

    def _token_piece(self, token: int, *, special: bool = False) -> bytes:
        buf = self._piece_buf
        n = self._lib.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, special)
        if n < 0:  # a piece longer than the buffer: grow it once
            self._piece_buf = buf = ctypes.create_string_buffer(-n)
            n = self._lib.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, special)
        piece = buf.raw[:n]
        if not special:
            self._piece_cache[token] = piece
        return piece

    def _token_is_eog(self, token: int) -> bool:
        eog = bool(self._lib.llama_vocab_is_eog(self._vocab, token))
        self._eog_cache[token] = eog
        return eog

    # -- generation -------------------------------------------------------------------

    def _reusable_prefix(self, prompt: Sequence[int]) -> int:
        """How many leading prompt tokens the KV cache already holds.

        At least one token is always evaluated, so the sampler has fresh logits.
        """
        llm = self._llm
        return min(common_prefix_length(llm.input_ids[: llm.n_tokens], prompt), len(prompt) - 1)

    def generate(self, prompt: Sequence[int], params: SamplingParams | None = None,
                 *, grammar: Any | None = None, strict_utf8: bool = False) -> Generation:
        """Start generating after `prompt` (token ids). Nothing runs until iterated.

        Args:
            grammar: from `grammar()`: constrains sampling.
            strict_utf8: ban tokens that would make the output invalid UTF-8 (a grammar
                alone lets stray bytes through; see utf8guard).
        """
        return Generation(self, prompt, params or SamplingParams(), grammar, strict_utf8)

    def grammar(self, gbnf: str) -> Any:
        """A compiled GBNF grammar for `generate(grammar=...)`, cached by its text."""
        cache = self.__dict__.setdefault("_grammars", {})
        compiled = cache.get(gbnf)
        if compiled is None:
            from llama_cpp.llama_grammar import LlamaGrammar

            compiled = cache[gbnf] = LlamaGrammar.from_string(gbnf, verbose=False)
        return compiled

    def save_state(self, path: Path) -> int:
        """Write the KV cache and its token ids to `path` (atomically); return the count.

        llama.cpp's own state file: the KV cells of the tokens held, not the whole
        context, so it grows with the conversation, not with --ctx.
        """
        llm = self._llm
        n = llm.n_tokens
        tokens = (self._lib.llama_token * max(n, 1))(*llm.input_ids[:n])
        tmp = path.with_name(path.name + ".tmp")
        with _quiet(self.info.verbose):
            ok = self._lib.llama_state_save_file(llm._ctx.ctx, str(tmp).encode(), tokens, n)
        if not ok:
            tmp.unlink(missing_ok=True)
            raise OSError(f"llama.cpp could not write {tmp}")
        os.replace(tmp, path)
        return n

    def load_state(self, path: Path) -> int:
        """Restore a state written by `save_state`; return how many tokens it holds
        (0 when the file does not fit this model and context: nothing is changed)."""
        llm = self._llm
        capacity = self.n_ctx
        tokens = (self._lib.llama_token * capacity)()
        count = ctypes.c_size_t(0)
        with _quiet(self.info.verbose):
            ok = self._lib.llama_state_load_file(llm._ctx.ctx, str(path).encode(), tokens,
                                                 capacity, ctypes.byref(count))
        if not ok:
            llm.n_tokens = 0
            return 0
        n = int(count.value)
        llm.input_ids[:n] = tokens[:n]
        llm.n_tokens = n
        return n

    def cached_tokens(self) -> list[int]:
        """The token ids the KV cache holds now (for tests, benchmarks and saving)."""
        return [int(t) for t in self._llm.input_ids[: self._llm.n_tokens]]


@contextlib.contextmanager
def _silenced_fds() -> Iterator[None]:
    """Send fds 1 and 2 to /dev/null: llama.cpp writes some load messages (SWA cache
    notes, its own errors) straight to the C stderr even with verbose=False."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


# The converter in llama-cpp-python 0.3.36 lets raw control characters into JSON
# strings (`[^"\\]`), which `json.loads` then rejects: measured on 2 of 10 schemas with a
# random-weight model. llama.cpp's own converter excludes them; so do we.
_LOOSE_CHAR = re.compile(r'^char ::= \[\^"\\\\\]', re.MULTILINE)  # char ::= [^"\\]
_STRICT_CHAR = r'char ::= [^"\\\x7F\x00-\x1F]'  # as llama.cpp's own converter writes it


def json_schema_to_gbnf(schema: dict[str, Any]) -> str:
    """GBNF for a JSON Schema, by llama.cpp's converter, with string characters fixed."""
    import json

    from llama_cpp.llama_grammar import json_schema_to_gbnf as convert

    return _LOOSE_CHAR.sub(lambda _m: _STRICT_CHAR, convert(json.dumps(schema)))


def any_json_object_gbnf() -> str:
    """llama.cpp's grammar for any JSON object (its strings already exclude controls)."""
    from llama_cpp.llama_grammar import JSON_GBNF

    return JSON_GBNF


def _quiet(verbose: bool) -> contextlib.AbstractContextManager[None]:
    return contextlib.nullcontext() if verbose else _silenced_fds()


def system_info() -> str:
    """llama.cpp's own description of the compiled backends and CPU features."""
    import llama_cpp

    return llama_cpp.llama_print_system_info().decode("utf-8", errors="replace").strip()


def gpu_offload_supported() -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


def llama_cpp_version() -> str:
    import llama_cpp

    return str(llama_cpp.__version__)


@dataclass
class ParallelJob:
    """One prompt for `ParallelDecoder`: any key, its token ids, its sampling."""

    key: Any
    prompt: list[int]
    params: SamplingParams


class ParallelDecoder:
    """Continuous batching (as llama-server's `-np`): up to `n_parallel` prompts decoded
    together in one llama.cpp batch, one KV cache, one sequence id per prompt; a
    finished prompt's slot is refilled at once.

    The prefix every prompt shares (the system prompt) is evaluated once and copied into
    each slot's sequence (in a unified KV cache the copy shares cells, it costs nothing).
    Each slot samples with its own chain, built exactly as `Llama.generate` builds it, so
    with the same seeds the text matches a one-at-a-time run wherever llama.cpp's
    batched arithmetic gives the same logits.
    """

    def __init__(self, engine: Engine, n_parallel: int) -> None:
        import llama_cpp
        from llama_cpp import _internals

        if n_parallel < 1:
            raise UsageError("--parallel must be 1 or more")
        self.engine = engine
        self.n_parallel = n_parallel
        self._lib, self._internals = llama_cpp, _internals
        llm = engine._llm
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = engine.n_ctx
        params.n_batch = params.n_ubatch = 512
        params.n_seq_max = n_parallel + 1  # one more: the shared prefix lives in its own
        params.kv_unified = True
        params.n_threads = params.n_threads_batch = engine.info.n_threads
        with _quiet(engine.info.verbose):
            self._ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
        self._mem = self._ctx.memory
        self._batch = _internals.LlamaBatch(n_tokens=params.n_batch, embd=0, n_seq_max=1,
                                            verbose=False)
        self._n_batch = params.n_batch
        self._prefix_seq = n_parallel

    def close(self) -> None:
        self._batch.close()
        self._ctx.close()

    @staticmethod
    def slot_room(n_ctx: int, prefix_len: int, n_parallel: int) -> int:
        """Each slot's share of the context after the shared prefix."""
        return (n_ctx - prefix_len) // n_parallel

    def _sampler(self, p: SamplingParams) -> Any:
        s = self._internals.LlamaSampler()
        n_vocab = self._lib.llama_vocab_n_tokens(self.engine._vocab)
        if p.ignore_eos:
            s.add_logit_bias(n_vocab, {t: float("-inf") for t in self.engine.eog_tokens()})
        if p.repeat_penalty != 1.0:  # 1.0 is a no-op: skip its pass over the vocabulary
            s.add_penalties(n_vocab, 64, p.repeat_penalty, 0.0, 0.0)
        if p.temperature == 0:
            s.add_greedy()
        else:
            s.add_top_k(p.top_k)
            s.add_typical(1.0, 1)
            s.add_top_p(p.top_p, 1)
            s.add_min_p(p.min_p, 1)
            s.add_temp(p.temperature)
            s.add_dist(p.seed if p.seed is not None else random.getrandbits(31))
        return s

    def _decode(self, entries: list[tuple[int, int, int, bool]],
                after_chunk: Any | None = None) -> None:
        """entries: (token, position, sequence, wants logits), decoded in n_batch chunks;
        `after_chunk(start, n)` runs after each, while that chunk's logits are valid."""
        for start in range(0, len(entries), self._n_batch):
            chunk = entries[start:start + self._n_batch]
            b = self._batch.batch
            for j, (tok, pos, seq, logits) in enumerate(chunk):
                b.token[j], b.pos[j] = tok, pos
                b.seq_id[j][0], b.n_seq_id[j], b.logits[j] = seq, 1, logits
            b.n_tokens = len(chunk)
            self._ctx.decode(self._batch)
            if after_chunk is not None:
                after_chunk(start, len(chunk))

    def run(self, jobs: Iterator[ParallelJob] | list[ParallelJob],
            shared_prefix: Sequence[int] = ()) -> Iterator[tuple[Any, GenerationResult]]:
        """Yield (key, result) as each prompt finishes (completion order)."""
        lib, engine = self._lib, self.engine
        jobs = iter(jobs)
        prefix = list(shared_prefix)
        lib.llama_memory_clear(self._mem, True)
        if prefix:
            self._decode([(t, i, self._prefix_seq, False) for i, t in enumerate(prefix)])
        plen = len(prefix)
        budget = self.slot_room(engine.n_ctx, plen, self.n_parallel)
        slots: list[dict[str, Any] | None] = [None] * self.n_parallel
        pieces, is_eog = engine._piece_cache, engine._eog_cache
        exhausted = False
        while True:
            for s in range(self.n_parallel):  # refill free slots at once
                if slots[s] is None and not exhausted:
                    job = next(jobs, None)
                    if job is None:
                        exhausted = True
                        break
                    if job.prompt[:plen] != prefix:
                        raise ValueError("a job does not start with the shared prefix")
                    own = job.prompt[plen:]
                    if len(own) + 1 > budget:
                        raise ContextOverflowError(len(job.prompt), plen + budget)
                    lib.llama_memory_seq_rm(self._mem, s, -1, -1)
                    if plen:
                        lib.llama_memory_seq_cp(self._mem, self._prefix_seq, s, 0, plen)
                    limit, reason = _reply_limit(job.params, budget - len(own))
                    slots[s] = {"job": job, "pending": own, "pos": plen, "ids": [], "chunks": [],
                                "limit": limit, "sampler": self._sampler(job.params), "t0": time.perf_counter(),
                                "t_first": None, "decoder": codecs.getincrementaldecoder("utf-8")("replace"),
                                "reason": reason}
            active = [s for s in range(self.n_parallel) if slots[s] is not None]
            if not active:
                return
            entries: list[tuple[int, int, int, bool]] = []
            for s in active:
                slot = slots[s]
                assert slot is not None
                toks = slot["pending"]
                for i, t in enumerate(toks):
                    entries.append((t, slot["pos"] + i, s, i == len(toks) - 1))
                slot["pos"] += len(toks)
                slot["pending"] = []
            last_entry = {e[2]: i for i, e in enumerate(entries) if e[3]}

            def sample_ready(start: int, n: int) -> None:
                for seq, i in last_entry.items():
                    if start <= i < start + n:
                        ready = slots[seq]
                        assert ready is not None
                        ready["sampled"] = ready["sampler"].sample(self._ctx, i - start)

            self._decode(entries, sample_ready)
            for s in active:
                slot = slots[s]
                assert slot is not None
                token = slot.pop("sampled")
                now = time.perf_counter()
                if slot["t_first"] is None:
                    slot["t_first"] = now
                eog = is_eog.get(token)
                if eog is None:
                    eog = engine._token_is_eog(token)
                finished = None
                if eog:
                    finished = "stop"
                else:
                    slot["ids"].append(token)
                    piece = pieces.get(token)
                    if piece is None:
                        piece = engine._token_piece(token)
                    text = slot["decoder"].decode(piece)
                    if text:
                        slot["chunks"].append(text)
                    if len(slot["ids"]) >= slot["limit"]:
                        finished = slot["reason"]
                    else:
                        slot["pending"] = [token]
                if finished:
                    slot["chunks"].append(slot["decoder"].decode(b"", final=True))
                    slot["sampler"].close()
                    job = slot["job"]
                    own = len(job.prompt) - plen
                    yield job.key, GenerationResult(
                        text="".join(slot["chunks"]), token_ids=slot["ids"], finish_reason=finished,
                        prompt_tokens=len(job.prompt), prompt_evaluated=own, prompt_reused=plen,
                        prompt_seconds=slot["t_first"] - slot["t0"],
                        generation_seconds=now - slot["t_first"])
                    slots[s] = None
