"""Compiling grammars for one vocabulary with llguidance, and building its tokenizer.

The tokenizer is built from the vocabulary's pieces once per model: the pieces are read
from llama.cpp once and kept in the cache directory (keyed by the model file's identity).
When a command knows it will constrain its reply, the build starts while llama.cpp loads
the model (EarlyTokenizer: from the kept pieces, no vocabulary needed yet), else in a
background thread as soon as a mode may need it. Each generation gets a fresh copy of a
compiled grammar (engine/constraint.py's Matcher).
"""

from __future__ import annotations

import hashlib
import json
import marshal
import os
import threading
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from hermes_cli import env, fileid
from hermes_cli.engine.constraint import Extensions, LazyMatcher, Matcher
from hermes_cli.engine.llama import lib
from hermes_cli.engine.params import Grammar, SamplingParams
from hermes_cli.engine.thinking import Tags, ThinkingFirst, plan
from hermes_cli.errors import UsageError

if TYPE_CHECKING:
    from hermes_cli.engine.vocab import Vocab

_CACHE_FORMAT = 3  # (format, n_tokens, end-of-generation ids, pieces, ids sorted by piece)
_TOKENIZED_KEPT = 4096  # strings the early tokenizer remembers (the grammar's forced spans)
LARGE_VOCABULARY = 32768  # above this, the tokenizer is built without llguidance's slices


class Grammars:
    """Compiles `Grammar` specs for one vocabulary; the llguidance tokenizer is built
    once (in the background when `prefetch` is called early)."""

    def __init__(self, vocab: Vocab, model_path: Path, early: EarlyTokenizer | None = None) -> None:
        self._vocab = vocab
        self._model_path = model_path
        self._early = early
        self._tokenizer: Any = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._compiled: dict[tuple[str, str], Any] = {}
        self._extensions: Extensions | None = None
        self._tags: Tags | None | Literal[False] = False  # the thinking tags, found on first use

    # -- the tokenizer ------------------------------------------------------------------

    def prefetch(self) -> None:
        """Start building the tokenizer in a background thread (idempotent)."""
        with self._lock:
            if self._tokenizer is not None or self._thread is not None:
                return
            self._thread = threading.Thread(target=self._build_quietly, daemon=True,
                                            name="hermes-llguidance-tokenizer")
            self._thread.start()

    def _build_quietly(self) -> None:
        try:
            self.tokenizer()
        except BaseException as e:  # noqa: BLE001 - re-raised in the thread that needs it
            self._error = e

    def wait(self) -> None:
        """Let a prefetch finish (before the model it reads is freed)."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def tokenizer(self) -> Any:
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
            if self._error is not None:
                raise self._error
        with self._lock:
            if self._tokenizer is None:
                self._tokenizer = self._build()
            return self._tokenizer

    @property
    def built_early(self) -> bool:
        """Whether the tokenizer was the one built while the model loaded."""
        return self._tokenizer is not None and self._early is not None and self._early.used

    def _build(self) -> Any:
        from llguidance import LLTokenizer

        if self._early is not None:
            built = self._early.take(self._vocab)
            if built is not None:
                tokenizer, kept = built
                self._extensions = Extensions(kept.pieces, kept.order)
                return tokenizer
        c = lib()
        kept = self._kept_vocabulary()
        self._extensions = Extensions(kept.pieces, kept.order)
        return LLTokenizer.from_llamacpp(  # type: ignore[attr-defined]
            tokens=kept.pieces, vocab_ptr=self._vocab.ptr,
            tokenize_fptr=_tokenize_fptr(c), eos_token=kept.eog, slices=_slices(kept.n_tokens))

    def _kept_vocabulary(self) -> KeptVocabulary:
        """Every token's bytes as llguidance wants them (control tokens marked with 0xFF),
        read from llama.cpp once per model file and kept in the cache directory."""
        path = _pieces_cache(self._model_path)
        kept = _read_pieces(path) if path is not None else None
        if kept is not None and kept.belongs_to(self._vocab):
            return kept
        import ctypes

        c, vocab = lib(), self._vocab
        control = c.LLAMA_TOKEN_ATTR_CONTROL
        # Its own buffer, not the vocabulary's: this may run in the prefetch thread while
        # the main thread decodes.
        buf = ctypes.create_string_buffer(1024)
        pieces = []
        for t in range(vocab.n_tokens):
            n = c.llama_token_to_piece(vocab.ptr, t, buf, len(buf), 0, True)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = c.llama_token_to_piece(vocab.ptr, t, buf, len(buf), 0, True)
            piece = buf.raw[:n]
            # Control tokens (<|im_end|>) are never text. User-defined ones (Hermes-2-Pro's
            # <tool_call>) are: llama.cpp makes them from plain text too, so a grammar
            # literal "<tool_call>" may be written with them.
            if c.llama_vocab_get_attr(vocab.ptr, t) & control:
                piece = b"\xff" + piece
            pieces.append(piece)
        kept = KeptVocabulary(vocab.n_tokens, sorted(vocab.eog), pieces,
                              array("i", sorted(range(vocab.n_tokens), key=pieces.__getitem__)))
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                tmp.write_bytes(marshal.dumps((_CACHE_FORMAT, kept.n_tokens, kept.eog, pieces,
                                               kept.order.tobytes())))
                os.replace(tmp, path)
            except OSError:
                pass  # a cache we cannot write only costs time
        return kept

    # -- grammars -----------------------------------------------------------------------

    def constraint(self, prompt: Sequence[int], params: SamplingParams, grammar: Grammar | None
                   ) -> Matcher | LazyMatcher | ThinkingFirst | None:
        """What holds a reply after `prompt`: its grammar, behind a reasoning model's
        thinking where it may think first or has a budget (engine/thinking.py); None when
        nothing does (free text from a model that does not reason)."""
        if self._tags is False:
            self._tags = Tags.of(self._vocab)
        thinking = plan(self._tags, prompt, constrained=grammar is not None, budget=params.think_budget)
        inner = self.matcher(grammar) if grammar is not None else None
        if thinking is None or not self._tags:
            return inner
        return ThinkingFirst(self._vocab, self._tags, thinking, inner)

    def matcher(self, grammar: Grammar) -> Matcher | LazyMatcher:
        """A fresh grammar state for one generation."""
        if grammar.trigger is None:
            return self._matcher(grammar.kind, grammar.source)
        body = grammar.source

        def start(opening: str) -> Matcher:
            head = f"start: {json.dumps(opening)} rest\n" if opening else "start: rest\n"
            return self._matcher("lark", head + body)

        return LazyMatcher(self._vocab, grammar.trigger, start)

    def _matcher(self, kind: str, source: str) -> Matcher:
        key = (kind, source)
        pristine = self._compiled.get(key)
        if pristine is None:
            pristine = self._compiled[key] = self._compile(kind, source)
        return Matcher(pristine.deep_copy(), self._vocab.n_tokens, self._tokenizer, self._extensions)

    def _compile(self, kind: str, source: str) -> Any:
        from llguidance import LLMatcher

        if kind == "json_schema":
            text = LLMatcher.grammar_from_json_schema(source)
        elif kind == "lark":
            text = LLMatcher.grammar_from_lark(source)
        else:
            raise ValueError(f"unknown grammar kind {kind!r}")
        matcher = LLMatcher(self.tokenizer(), text)
        if matcher.is_error():
            first = (matcher.get_error() or "unknown error").strip().splitlines()[0]
            raise UsageError(f"cannot build a grammar: {first}")
        return matcher


class EarlyTokenizer:
    """The llguidance tokenizer, built in a thread while llama.cpp loads the model.

    The build needs only the pieces (kept from an earlier process) and the end tokens;
    llguidance calls back for text tokenization only once grammars run, after the load,
    so the callback (`_LateTokenize`) gets the vocabulary then. Built after the load, it
    was the wait before a one-shot `ask --schema`'s first token once the prompt was short
    (0.5–0.6 s on gemma-3's 262k vocabulary, on the load's 0.7 s). Without kept pieces
    (the model's first grammar) there is nothing to start: Grammars builds it as before.
    """

    def __init__(self, kept: Path) -> None:
        self._kept = kept
        self._vocabulary: KeptVocabulary | None = None
        self._tokenize: _LateTokenize | None = None
        self._tokenizer: Any = None
        self.used = False
        self._thread = threading.Thread(target=self._build, daemon=True, name="hermes-llguidance-early")
        self._thread.start()

    @classmethod
    def start(cls, model_path: Path) -> EarlyTokenizer | None:
        """Start the build for `model_path`, or None when its pieces were never kept."""
        path = _pieces_cache(model_path)
        return cls(path) if path is not None and path.is_file() else None

    def _build(self) -> None:
        # Everything here runs while the main thread is inside llama.cpp's load (the
        # GIL is free then); a failure only means Grammars builds it the usual way.
        kept = _read_pieces(self._kept)
        if kept is None or not kept.eog:
            return
        self._vocabulary = kept
        self._tokenize = _LateTokenize(kept.pieces, kept.eog)
        try:
            from llguidance import LLTokenizer

            self._tokenizer = LLTokenizer(self._tokenize, eos_token=kept.eog,  # type: ignore[arg-type]
                                          slices=_slices(kept.n_tokens))
            import numpy  # noqa: F401 - the masks' (engine/constraint.py): imported here for free
        except Exception:  # noqa: BLE001
            self._tokenizer = None

    def take(self, vocab: Vocab) -> tuple[Any, KeptVocabulary] | None:
        """The tokenizer and the kept vocabulary for `vocab`, or None when they do not
        belong to it (a file replaced in place, a failed build)."""
        self._thread.join()
        kept = self._vocabulary
        if self._tokenizer is None or self._tokenize is None or kept is None or not kept.belongs_to(vocab):
            return None
        self._tokenize.attach(vocab)
        self.used = True
        return self._tokenizer, kept


class _LateTokenize:
    """llguidance's text tokenizer for EarlyTokenizer: llama.cpp's, once the model is
    loaded. llguidance asks it for every forced span (compute_ff_tokens), so the spans it
    has seen are remembered: a dict lookup instead of a ctypes call."""

    is_tokenizer_wrapper = True  # what llguidance checks for
    bos_token_id = None
    special_token_ids: list[int] = []  # control tokens are marked in the pieces already

    def __init__(self, pieces: list[bytes], eog: list[int]) -> None:
        self.tokens = pieces
        self.eos_token_id = eog[0] if eog else None
        self._vocab: Vocab | None = None
        self._seen: dict[str, list[int]] = {}

    def attach(self, vocab: Vocab) -> None:
        self._vocab = vocab

    def __call__(self, text: str) -> list[int]:
        # llguidance unwraps the result: an exception here would be a Rust panic. Only
        # a closed engine raises, and nothing constrains a reply after its close.
        ids = self._seen.get(text)
        if ids is None:
            try:
                ids = self._vocab.tokenize(text) if self._vocab is not None else []
            except Exception:  # noqa: BLE001
                return []
            if len(self._seen) >= _TOKENIZED_KEPT:
                self._seen.clear()
            self._seen[text] = ids
        return ids


class KeptVocabulary(NamedTuple):
    """What is kept of a vocabulary between processes (the cache's `.pieces` file)."""

    n_tokens: int
    eog: list[int]
    pieces: list[bytes]
    order: array[int]  # the ids sorted by their pieces (engine/constraint.py's Extensions)

    def belongs_to(self, vocab: Vocab) -> bool:
        """Kept from this vocabulary (its size and end tokens; the file is keyed by the
        model file's identity, so this catches one replaced in place)."""
        return self.n_tokens == vocab.n_tokens and self.eog == sorted(vocab.eog)


def _slices(n_tokens: int) -> list[str] | None:
    """llguidance's token slices, or none on a large vocabulary: they make the full mask
    inside a string (computed only when a sampled token is rejected) 0.12 → 0.01 ms on
    gemma's 262k, but double the build every process waits for, 0.41 → 0.9 s."""
    return [] if n_tokens > LARGE_VOCABULARY else None


def _read_pieces(path: Path) -> KeptVocabulary | None:
    """The kept vocabulary, or None (absent, of an older format, corrupt)."""
    try:
        fmt, n, eog, pieces, order_bytes = marshal.loads(path.read_bytes())
        order = array("i")
        order.frombytes(order_bytes)
    except (OSError, ValueError, EOFError, TypeError):
        return None
    if (fmt != _CACHE_FORMAT or not isinstance(n, int) or not isinstance(pieces, list)
            or len(pieces) != n or len(order) != n or not all(isinstance(t, int) for t in eog)):
        return None
    return KeptVocabulary(n, list(eog), pieces, order)


def check_grammar(kind: str, source: str) -> list[str]:
    """Problems llguidance finds in a grammar, without a model (empty: it compiles)."""
    from llguidance import LLMatcher

    text = (LLMatcher.grammar_from_json_schema(source) if kind == "json_schema"
            else LLMatcher.grammar_from_lark(source))
    is_error, messages = LLMatcher.validate_grammar_with_warnings(text)
    return list(messages) if is_error else []


def _tokenize_fptr(c: Any) -> int:
    import ctypes

    return int(ctypes.cast(c._lib.llama_tokenize, ctypes.c_void_p).value or 0)


def _pieces_cache(model_path: Path) -> Path | None:
    key = fileid.key(model_path)
    if key is None:
        return None
    return env.cache_dir() / "vocab" / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".pieces")
