"""A loaded GGUF model and its context, whose KV cache persists across generations.

    engine = Engine.load(path)
    gen = engine.generate(prompt_ids, SamplingParams(...), grammar=None)
    for text in gen:          # decoded text, as soon as it is valid UTF-8
        ...
    gen.result                # stop reason, token counts, reuse, timings

The KV prefix is matched here, explicitly: the engine knows which ids sequence 0 of its
context holds, keeps the longest common prefix with the next prompt and evaluates only
the rest, so the evaluated/reused counts we report are facts. One context serves single
generation (sequence 0) and parallel decoding (one sequence per slot, `n_seq_max`).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hermes_cli.engine import devices, gguf, offload
from hermes_cli.engine.generation import Generation
from hermes_cli.engine.grammars import EarlyTokenizer, Grammars
from hermes_cli.engine.hardware import available_memory_bytes, kv_cache_bytes, usable_cpu_count
from hermes_cli.engine.llama import lib
from hermes_cli.engine.offload import OffloadPlan
from hermes_cli.engine.params import (
    DEFAULT_CTX_CAP,
    LOAD_LIMITS,
    EngineInfo,
    Grammar,
    SamplingParams,
    check_load,
    common_prefix_length,
)
from hermes_cli.engine.prompt_cache import KeptPrefix
from hermes_cli.engine.quiet import quiet
from hermes_cli.engine.vocab import Vocab
from hermes_cli.errors import ContextOverflowError, DecodeError, ModelError, UsageError

N_BATCH = 512  # prompt tokens per llama_decode: also how often Ctrl-C can land in a long prompt
_COUNT_CHUNK = 1 << 16  # characters tokenized at a time when counting a large text (Engine.tokenize)


def _decode_failed(status: int, what: str, hint: str) -> DecodeError:
    """The one message for a failed llama_decode (a single prompt's or a parallel batch's)."""
    return DecodeError(f"llama.cpp could not evaluate {what} (status {status})", hint=hint)


def _default_offload(meta: dict[str, Any], path: Path, n_ctx: int) -> OffloadPlan | None:
    """Every layer on the GPU when it all fits, else as many as fit (None: no GPU seen)."""
    gpus = devices.gpus()
    free = sum(d.free for d in gpus)
    if not gpus or free <= 0:
        return None
    return offload.plan(meta, offload.model_parts(path), n_ctx, free)


def _check_memory(meta: dict[str, Any], n_ctx: int, path: Path) -> None:
    """Refuse a context whose KV cache cannot fit in memory, before llama.cpp tries."""
    need, free = kv_cache_bytes(meta, n_ctx), available_memory_bytes()
    if need is not None and free is not None and need > free:
        raise ModelError(f"a {n_ctx}-token context for {path.name} needs about {need / 1e9:.1f} GB "
                         f"of KV cache and {free / 1e9:.1f} GB of memory is free",
                         hint="lower --ctx")


class Engine:
    """A loaded GGUF model with one context whose KV cache persists across calls."""

    def __init__(self, model: Any, ctx: Any, vocab: Vocab, info: EngineInfo, n_seq_max: int,
                 early: EarlyTokenizer | None = None) -> None:
        self._c = lib()
        self._model = model
        self.ctx = ctx
        self.vocab = vocab
        self.info = info
        self.n_seq_max = n_seq_max
        self.kv_unified = True  # one KV cache for every sequence (Engine.load's kv_unified)
        self._held: list[int] = []  # the ids whose KV sequence 0 holds, in order
        self.grammars = Grammars(vocab, info.path, early)
        self._one = (self._c.llama_token * 1)()
        self._one_batch = self._c.llama_batch_get_one(self._one, 1) if ctx else None

    # -- loading ----------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path, *, n_ctx: int | None = None, n_gpu_layers: int | None = None,
             n_threads: int | None = None, verbose: bool = False, vocab_only: bool = False,
             n_seq_max: int = 1, grammars: bool = False, kv_unified: bool = True) -> Engine:
        """Load a GGUF file.

        Args:
            n_ctx: context size; None takes the trained length (capped at
                DEFAULT_CTX_CAP), 0 the full trained length.
            n_gpu_layers: None offloads every layer when llama.cpp can use a GPU.
            n_threads: None uses the CPUs this process may run on.
            vocab_only: load only the tokenizer (for --show-prompt): fast, no weights.
            n_seq_max: sequences the context can hold (parallel decoding needs N + 1).
            kv_unified: one KV cache for all sequences, so one can share another's cells
                (batch's shared prefix); False gives each sequence its own n_ctx/n_seq_max
                cells, and a token attends over its own sequence's cells only, not
                over every sequence's (`hermes serve`, whose slots keep their cells between
                requests: unified, 8 slots' worth made every token attend over them all).
            grammars: the reply will be constrained: the grammar tokenizer is built while
                the model loads (engine/grammars.py's EarlyTokenizer), or right after.

        Raises:
            ModelError: missing, not a GGUF, truncated or rejected by llama.cpp.
        """
        for name, value in (("ctx", n_ctx), ("threads", n_threads), ("gpu_layers", n_gpu_layers)):
            check_load(name, value)
        path = Path(path)
        meta = gguf.read_metadata(path)
        gguf.check_shape(meta, path)
        trained = gguf.trained_context(meta) or 4096
        if n_ctx is None:
            n_ctx = min(trained, DEFAULT_CTX_CAP)
        elif n_ctx == 0:
            n_ctx = min(trained, LOAD_LIMITS["ctx"][1])
        if n_threads is None:
            n_threads = min(usable_cpu_count(), LOAD_LIMITS["threads"][1])

        c = lib(verbose=verbose)
        offload = bool(c.llama_supports_gpu_offload())
        plan = None
        if n_gpu_layers is None:
            plan = _default_offload(meta, path, n_ctx) if offload and not vocab_only else None
            n_gpu_layers = plan.layers if plan is not None else (-1 if offload else 0)
        if not vocab_only and n_gpu_layers == 0:
            _check_memory(meta, n_ctx, path)
        mparams = c.llama_model_default_params()
        mparams.n_gpu_layers = n_gpu_layers
        mparams.use_mmap = True
        mparams.vocab_only = vocab_only
        early = EarlyTokenizer.start(path) if grammars and not vocab_only else None
        with quiet(verbose):
            model = c.llama_model_load_from_file(str(path).encode(), mparams)
        if not model:
            raise ModelError(
                f"llama.cpp could not load {path}: the file may be truncated or corrupt, or use "
                "an architecture this llama.cpp build does not know",
                hint="run with --verbose to see llama.cpp's own log")
        ctx = None
        if not vocab_only:
            cparams = c.llama_context_default_params()
            cparams.n_ctx = n_ctx
            cparams.n_batch = cparams.n_ubatch = min(N_BATCH, n_ctx)
            cparams.n_seq_max = n_seq_max
            cparams.kv_unified = kv_unified
            cparams.n_threads = cparams.n_threads_batch = n_threads
            with quiet(verbose):
                ctx = c.llama_init_from_model(model, cparams)
            if not ctx:
                c.llama_model_free(model)
                raise ModelError(f"llama.cpp could not create a {n_ctx}-token context for {path} "
                                 "(not enough memory?)", hint="lower --ctx")
        token_types = meta.get("tokenizer.ggml.token_type")
        vocab = Vocab(c.llama_model_get_vocab(model),
                      token_types if not isinstance(token_types, int) else None)
        info = EngineInfo(path=path, n_ctx=n_ctx, n_ctx_train=trained, n_gpu_layers=n_gpu_layers,
                          n_threads=n_threads, gpu_offload_supported=offload, metadata=meta,
                          verbose=verbose, offload=plan.describe() if plan is not None else None,
                          offload_partial=plan is not None and plan.layers != -1)
        engine = cls(model, ctx, vocab, info, n_seq_max, early)
        engine.kv_unified = kv_unified or n_seq_max == 1
        if grammars and not vocab_only:
            engine.prefetch_grammars()
        return engine

    def close(self) -> None:
        """Free the model. Using the engine afterwards raises (llama.cpp would crash on a
        freed context)."""
        if self._model is not None:
            self.grammars.wait()  # a prefetch thread may still read the vocabulary
            if self.ctx:
                self._c.llama_free(self.ctx)
            self._c.llama_model_free(self._model)
            self._model = self.ctx = None
            self.vocab.close()

    def _live_ctx(self) -> Any:
        if self._model is None:
            raise RuntimeError("the engine is closed")
        if not self.ctx:
            raise UsageError("this model was loaded for its vocabulary only")
        return self.ctx

    # -- tokens -----------------------------------------------------------------------

    @property
    def n_ctx(self) -> int:
        return self.info.n_ctx

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        """Text to ids, no BOS. `special=False` keeps "<|im_start|>" plain text.

        A text larger than `_COUNT_CHUNK` characters is first counted chunk by chunk,
        and refused (ContextOverflowError) as soon as it cannot fit the context: 50 MB on
        stdin cost 3.4 GB when tokenized whole only to be refused. Chunk edges can only
        split merges, adding at most one token each, so the count less the chunks is a
        lower bound of the whole text's tokens."""
        if self.ctx is not None and len(text) > 4 * _COUNT_CHUNK:
            count = 0
            for chunks, start in enumerate(range(0, len(text), _COUNT_CHUNK), 1):
                count += len(self.vocab.tokenize(text[start:start + _COUNT_CHUNK], special=special))
                if count - chunks > self.n_ctx:
                    raise ContextOverflowError(count - chunks, self.n_ctx, message=(
                        f"the text is more than {count - chunks:,} tokens (counted in its first "
                        f"{min(len(text), start + _COUNT_CHUNK):,} of {len(text):,} characters) but "
                        f"the context holds {self.n_ctx:,}"))
        return self.vocab.tokenize(text, special=special)

    def bos_prefix(self) -> list[int]:
        return self.vocab.bos_prefix()

    def special_token(self, text: str) -> int | None:
        return self.vocab.special_token(text)

    def detokenize(self, ids: Sequence[int], *, special: bool = True) -> str:
        return self.vocab.detokenize(ids, special=special)

    def ids_spell(self, ids: Sequence[int], text: str) -> bool:
        return self.vocab.ids_spell(ids, text)

    def control_tokens(self) -> dict[str, int]:
        return self.vocab.control_tokens()

    def bos_text(self) -> str:
        return self.vocab.bos_text()

    def eos_text(self) -> str:
        return self.vocab.eos_text()

    def chat_template(self) -> str | None:
        """The Jinja chat template embedded in the GGUF, if any."""
        source = self.info.metadata.get("tokenizer.chat_template")
        return source if isinstance(source, str) else None

    def eog_tokens(self) -> list[int]:
        """Every end-of-generation token of the vocabulary."""
        return sorted(self.vocab.eog)

    # -- the KV cache of sequence 0 ---------------------------------------------------

    def cached_tokens(self) -> list[int]:
        """The token ids the KV cache holds now (for tests, benchmarks and saving)."""
        return list(self._held)

    def forget(self) -> None:
        """Empty the KV cache (after parallel decoding used the other sequences)."""
        self._c.llama_memory_clear(self._c.llama_get_memory(self._live_ctx()), True)
        self._held = []

    # -- other sequences (parallel decoding, engine/parallel.py) ------------------------
    # The engine owns the context and its KV cache: ParallelDecoder asks for these
    # instead of calling llama_memory_* on the context itself.

    def drop_sequence(self, seq: int) -> None:
        """Forget everything sequence `seq` holds."""
        self._c.llama_memory_seq_rm(self._c.llama_get_memory(self._live_ctx()), seq, -1, -1)

    def trim_sequence(self, seq: int, keep: int) -> int:
        """Keep the first `keep` cells of sequence `seq`, drop the rest; return how many
        are kept (0 where the cache cannot cut a sequence, e.g. a sliding window)."""
        mem = self._c.llama_get_memory(self._live_ctx())
        if self._c.llama_memory_seq_rm(mem, seq, keep, -1):
            return keep
        self._c.llama_memory_seq_rm(mem, seq, -1, -1)
        return 0

    def copy_sequence(self, src: int, dst: int, n: int) -> None:
        """Let sequence `dst` share the first `n` cells of `src` (no copy in a unified cache)."""
        self._c.llama_memory_seq_cp(self._c.llama_get_memory(self._live_ctx()), src, dst, 0, n)

    def decode_batch(self, batch: Any, what: str) -> None:
        """llama_decode of a batch the caller filled (parallel decoding); DecodeError
        names `what` on failure."""
        status = self._c.llama_decode(self._live_ctx(), batch)
        if status != 0:
            raise _decode_failed(status, what, "lower --parallel or --ctx")

    def reuse_prefix(self, prompt: Sequence[int]) -> int:
        """Keep the longest prefix of `prompt` the cache holds (at least one token is left
        to evaluate, so the sampler has fresh logits); drop the rest; return its length."""
        ctx = self._live_ctx()
        keep = min(common_prefix_length(self._held, prompt), len(prompt) - 1)
        if keep < len(self._held):
            mem = self._c.llama_get_memory(ctx)
            if not self._c.llama_memory_seq_rm(mem, 0, keep, -1):  # e.g. a sliding-window cache
                self._c.llama_memory_clear(mem, True)
                keep = 0
            del self._held[keep:]
        return keep

    def evaluate(self, tokens: Sequence[int]) -> None:
        """Decode `tokens` after what sequence 0 holds, in batches of N_BATCH; the logits
        of the last one are then at index -1."""
        ctx, c = self._live_ctx(), self._c
        for start in range(0, len(tokens), N_BATCH):
            chunk = tokens[start:start + N_BATCH]
            if len(chunk) == 1:
                self._one[0] = chunk[0]
                batch = self._one_batch
            else:
                ids = (c.llama_token * len(chunk))(*chunk)  # referenced until decoded
                batch = c.llama_batch_get_one(ids, len(chunk))
            status = c.llama_decode(ctx, batch)  # the per-token path: no call more than needed
            if status != 0:
                raise _decode_failed(status, f"{len(chunk)} tokens", "lower --ctx, or free memory")
            self._held.extend(chunk)

    # -- generation -------------------------------------------------------------------

    def generate(self, prompt: Sequence[int], params: SamplingParams | None = None,
                 *, grammar: Grammar | None = None, kept: KeptPrefix | None = None) -> Generation:
        """Start generating after `prompt` (token ids). Nothing runs until iterated.

        Args:
            grammar: constrains the reply (JSON Schema or a Lark grammar, maybe lazy).
            kept: a prefix of `prompt` to load from a prompt cache, or to keep there.
        """
        return Generation(self, list(prompt), params or SamplingParams(), grammar, kept)

    def prefetch_grammars(self) -> None:
        """Build the grammar tokenizer in the background now (a mode will need it)."""
        if self._model is not None:
            self.grammars.prefetch()

    # -- state files ------------------------------------------------------------------

    def save_state(self, path: Path) -> int:
        """Write the KV cache and its token ids to `path` (atomically); return the count.

        llama.cpp's own state file: the KV cells of the tokens held, not the whole
        context, so it grows with the conversation, not with --ctx.
        """
        ctx, c = self._live_ctx(), self._c
        n = len(self._held)
        tokens = (c.llama_token * max(n, 1))(*self._held)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # two processes never share one
        with quiet(self.info.verbose):
            ok = c.llama_state_save_file(ctx, str(tmp).encode(), tokens, n)
        if not ok:
            tmp.unlink(missing_ok=True)
            raise OSError(f"llama.cpp could not write {tmp}")
        os.replace(tmp, path)
        return n

    def load_state(self, path: Path) -> int:
        """Restore a state written by `save_state`; return how many tokens it holds
        (0 when the file does not fit this model and context: the cache is emptied)."""
        ctx, c = self._live_ctx(), self._c
        tokens = (c.llama_token * self.n_ctx)()
        count = ctypes.c_size_t(0)
        with quiet(self.info.verbose):
            ok = c.llama_state_load_file(ctx, str(path).encode(), tokens, self.n_ctx, ctypes.byref(count))
        if not ok:
            self.forget()
            return 0
        self._held = list(tokens[: int(count.value)])
        return len(self._held)
