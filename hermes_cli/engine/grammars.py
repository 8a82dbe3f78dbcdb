"""Compiling grammars for one vocabulary with llguidance, and building its tokenizer.

The tokenizer is built from the vocabulary's pieces once per model: the pieces are read
from llama.cpp once and kept in the cache directory (keyed by the model file's identity),
and the build can start in a background thread as soon as a mode may need it. Each
generation gets a fresh copy of a compiled grammar (engine/constraint.py's Matcher).
"""

from __future__ import annotations

import hashlib
import json
import marshal
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hermes_cli import env
from hermes_cli.engine.constraint import Extensions, LazyMatcher, Matcher
from hermes_cli.engine.llama import lib
from hermes_cli.engine.params import Grammar
from hermes_cli.errors import UsageError

if TYPE_CHECKING:
    from hermes_cli.engine.vocab import Vocab

_CACHE_FORMAT = 2
LARGE_VOCABULARY = 32768  # above this, the tokenizer is built without llguidance's slices


class Grammars:
    """Compiles `Grammar` specs for one vocabulary; the llguidance tokenizer is built
    once (in the background when `prefetch` is called early)."""

    def __init__(self, vocab: Vocab, model_path: Path) -> None:
        self._vocab = vocab
        self._model_path = model_path
        self._tokenizer: Any = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._compiled: dict[tuple[str, str], Any] = {}
        self._extensions: Extensions | None = None

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

    def _build(self) -> Any:
        from llguidance import LLTokenizer

        c = lib()
        pieces = self._cached_pieces()
        self._extensions = Extensions(pieces)
        # Without llguidance's default token slices on a large vocabulary: they make the
        # full mask inside a string (computed only when a sampled token is rejected)
        # 0.12 → 0.01 ms on gemma's 262k, but double the build every process waits for,
        # 0.41 → 0.9 s.
        slices: list[str] | None = [] if self._vocab.n_tokens > LARGE_VOCABULARY else None
        return LLTokenizer.from_llamacpp(  # type: ignore[attr-defined]
            tokens=pieces, vocab_ptr=self._vocab.ptr,
            tokenize_fptr=_tokenize_fptr(c), eos_token=sorted(self._vocab.eog), slices=slices)

    def _cached_pieces(self) -> list[bytes]:
        """Every token's bytes as llguidance wants them (control tokens marked with 0xFF),
        read from llama.cpp once per model file and kept in the cache directory."""
        path = _pieces_cache(self._model_path)
        if path is not None:
            try:
                fmt, n, pieces = marshal.loads(path.read_bytes())
                if fmt == _CACHE_FORMAT and n == self._vocab.n_tokens:
                    return list(pieces)
            except (OSError, ValueError, EOFError, TypeError):
                pass
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
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                tmp.write_bytes(marshal.dumps((_CACHE_FORMAT, vocab.n_tokens, pieces)))
                os.replace(tmp, path)
            except OSError:
                pass  # a cache we cannot write only costs time
        return pieces

    # -- grammars -----------------------------------------------------------------------

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
    try:
        st = model_path.stat()
    except OSError:
        return None
    key = f"{model_path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()
    return env.cache_dir() / "vocab" / (hashlib.sha256(key).hexdigest()[:32] + ".pieces")
