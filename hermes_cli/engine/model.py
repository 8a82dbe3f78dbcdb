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

import ctypes
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hermes_cli.engine import gguf
from hermes_cli.engine.generation import Generation
from hermes_cli.engine.hardware import usable_cpu_count
from hermes_cli.engine.params import DEFAULT_CTX_CAP, EngineInfo, SamplingParams, common_prefix_length
from hermes_cli.engine.quiet import quiet
from hermes_cli.errors import ModelError, UsageError

if TYPE_CHECKING:
    import llama_cpp


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
        meta = gguf.read_metadata(path)
        trained = gguf.trained_context(meta) or 4096
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
            with quiet(verbose):
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
        processors: list[Any] = []
        if params.ignore_eos:
            processors.append(self._ban_eog)
        if strict_utf8:
            if self._utf8_guard is None:
                from hermes_cli.engine.utf8guard import Utf8Guard

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
        return min(common_prefix_length(list(llm.input_ids[: llm.n_tokens]), prompt), len(prompt) - 1)

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
        with quiet(self.info.verbose):
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
        with quiet(self.info.verbose):
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


