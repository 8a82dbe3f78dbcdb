"""A model's vocabulary: text <-> token ids, token pieces, and the end-of-generation set.

Pieces are cached per token as they are first seen, so the per-token path of a
generation is one dict lookup. The end-of-generation set is every token llama.cpp calls
EOG (`llama_vocab_is_eog`), not just EOS: Hermes Θ also emits <|eot_id|> and
<|end_of_text|>. It is found by asking llama.cpp about the special tokens only, which the
GGUF header lists by type, so a 262k vocabulary costs a few hundred calls, not 262k.
"""

from __future__ import annotations

import ctypes
import re
import sys
from array import array
from collections.abc import Sequence
from typing import Any

from hermes_cli.engine.llama import lib

_CONTROL, _USER_DEFINED = 3, 4  # GGUF token types (gguf spec)
_SPECIAL_TYPES = re.compile(b"(?:\x03|\x04)\x00\x00\x00" if sys.byteorder == "little"
                            else b"\x00\x00\x00(?:\x03|\x04)")


class Vocab:
    def __init__(self, vocab_ptr: Any, token_types: Sequence[int] | None) -> None:
        self._c = lib()
        self.ptr = vocab_ptr
        self.n_tokens = int(self._c.llama_vocab_n_tokens(vocab_ptr))
        self._buf = ctypes.create_string_buffer(256)
        self.text_pieces: dict[int, bytes] = {}  # token -> bytes, filled as tokens are seen
        self._special_pieces: dict[int, bytes] = {}
        self._control: dict[int, bool] = {}
        self._specials = self._special_candidates(token_types)
        self.eog: frozenset[int] = frozenset(t for t in self._specials if self._c.llama_vocab_is_eog(self.ptr, t))
        self._bos: list[int] | None = None

    def _special_candidates(self, token_types: Sequence[int] | None) -> Sequence[int]:
        """Control and user-defined tokens (the only ones that can be EOG or markers)."""
        if isinstance(token_types, array) and token_types.itemsize == 4 and len(token_types) == self.n_tokens:
            raw = token_types.tobytes()  # find the special tokens at C speed, not per token
            candidates: Sequence[int] = [m.start() // 4 for m in _SPECIAL_TYPES.finditer(raw)
                                         if m.start() % 4 == 0]
        elif token_types is not None and len(token_types) == self.n_tokens:
            candidates = [t for t, kind in enumerate(token_types) if kind in (_CONTROL, _USER_DEFINED)]
        else:  # no types in the header: ask about every token once
            candidates = range(self.n_tokens)
        return candidates

    def control_tokens(self) -> dict[str, int]:
        """The text of every control token (the markers a chat template may write)."""
        return {self.piece(t, special=True).decode("utf-8", errors="replace"): t
                for t in self._specials if self.is_control(t)}

    def bos_text(self) -> str:
        return self.piece(int(self._c.llama_vocab_bos(self.ptr)), special=True).decode("utf-8", errors="replace")

    def eos_text(self) -> str:
        return self.piece(int(self._c.llama_vocab_eos(self.ptr)), special=True).decode("utf-8", errors="replace")

    def close(self) -> None:
        self.ptr = None  # the model owns the vocabulary: after it is freed, refuse

    def _live(self) -> Any:
        if self.ptr is None:
            raise RuntimeError("the engine is closed")
        return self.ptr

    # -- text -> ids ----------------------------------------------------------------------

    def tokenize(self, text: str, *, special: bool = False, add_bos: bool = False) -> list[int]:
        """Text to ids. `special=False` keeps "<|im_start|>" plain text: that is what
        makes user, file and tool text unable to forge a turn."""
        ptr = self._live()
        data = text.encode("utf-8")
        capacity = len(data) + 8
        ids = (self._c.llama_token * capacity)()
        n = self._c.llama_tokenize(ptr, data, len(data), ids, capacity, add_bos, special)
        if n < 0:  # more tokens than bytes + 8 (cannot happen for byte-level vocabularies)
            capacity = -n
            ids = (self._c.llama_token * capacity)()
            n = self._c.llama_tokenize(ptr, data, len(data), ids, capacity, add_bos, special)
        return list(ids[:n])

    def bos_prefix(self) -> list[int]:
        """What the tokenizer puts before a sequence: [BOS] for Llama-3, [] for Qwen."""
        if self._bos is None:
            self._bos = self.tokenize("", add_bos=True, special=True)
        return list(self._bos)

    def special_token(self, text: str) -> int | None:
        """Id of a control token by its text, or None when the vocabulary lacks it."""
        ids = self.tokenize(text, special=True)
        if len(ids) == 1 and self.piece(ids[0], special=True) == text.encode():
            return ids[0]
        return None

    # -- ids -> text ----------------------------------------------------------------------

    def piece(self, token: int, *, special: bool = False) -> bytes:
        """The bytes of one token. With `special=False` control tokens are empty."""
        cache = self._special_pieces if special else self.text_pieces
        piece = cache.get(token)
        if piece is None:
            ptr, buf = self._live(), self._buf
            n = self._c.llama_token_to_piece(ptr, token, buf, len(buf), 0, special)
            if n < 0:  # a piece longer than the buffer: grow it once
                self._buf = buf = ctypes.create_string_buffer(-n)
                n = self._c.llama_token_to_piece(ptr, token, buf, len(buf), 0, special)
            piece = cache[token] = buf.raw[:n]
        return piece

    def detokenize(self, ids: Sequence[int], *, special: bool = True) -> str:
        return b"".join(self.piece(t, special=special) for t in ids).decode("utf-8", errors="replace")

    def ids_spell(self, ids: Sequence[int], text: str) -> bool:
        """Are `ids` this vocabulary's tokens, none a control token, spelling `text`?"""
        n = self.n_tokens
        if any(not isinstance(t, int) or t < 0 or t >= n or self.is_control(t) for t in ids):
            return False
        return b"".join(self.piece(t) for t in ids).decode("utf-8", errors="replace") == text

    def is_control(self, token: int) -> bool:
        control = self._control.get(token)
        if control is None:
            attr = self._c.llama_vocab_get_attr(self._live(), token)
            control = self._control[token] = bool(attr & self._c.LLAMA_TOKEN_ATTR_CONTROL)
        return control
