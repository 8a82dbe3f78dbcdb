"""Keep sampled bytes valid UTF-8, for grammar-constrained output.

Why: llama.cpp's grammar engine takes a stray byte from a byte-level vocabulary (a lone
continuation byte 0x80, an overlong lead) as a character, so a "valid" JSON string can
decode to U+FFFD and break maxLength or pattern (measured: 3 of 30 runs on a random
model; see shared/reference). This guard bans, before sampling, every token whose bytes
would make the output invalid UTF-8 given the bytes already written.

How, at O(1)-ish per token: the UTF-8 decoder is an automaton with 8 states (0 = between
characters; the others = "k continuation bytes still due, the next in [lo, hi]", which
covers overlongs and surrogates). Almost every token is either complete valid UTF-8
(allowed only in state 0, leads back to 0) or a special token (empty text, always
allowed). Only the few remaining tokens (lone bytes, partial sequences) get a per-state
table. Per token the guard looks at one new id and writes -inf into a short list of ids
(state 0), or keeps a short list (mid-character).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

# (continuation bytes still due, lowest and highest allowed next byte)
State = tuple[int, int, int]
START: State = (0, 0, 0)
_LEADS: list[tuple[range, State]] = [
    (range(0xC2, 0xE0), (1, 0x80, 0xBF)),
    (range(0xE0, 0xE1), (2, 0xA0, 0xBF)),  # no overlongs
    (range(0xE1, 0xED), (2, 0x80, 0xBF)),
    (range(0xED, 0xEE), (2, 0x80, 0x9F)),  # no surrogates
    (range(0xEE, 0xF0), (2, 0x80, 0xBF)),
    (range(0xF0, 0xF1), (3, 0x90, 0xBF)),
    (range(0xF1, 0xF4), (3, 0x80, 0xBF)),
    (range(0xF4, 0xF5), (3, 0x80, 0x8F)),  # nothing above U+10FFFF
]
STATES: list[State] = [START] + sorted({s for _, s in _LEADS} | {(1, 0x80, 0xBF), (2, 0x80, 0xBF)})


def step(state: State, data: bytes) -> State | None:
    """The automaton after `data`, or None when `data` makes the text invalid."""
    due, lo, hi = state
    for byte in data:
        if due:
            if not lo <= byte <= hi:
                return None
            due, lo, hi = due - 1, 0x80, 0xBF
            if not due:
                lo = hi = 0
        elif byte < 0x80:
            continue
        else:
            for leads, nxt in _LEADS:
                if byte in leads:
                    due, lo, hi = nxt
                    break
            else:
                return None
    return (due, lo, hi)


class Utf8Guard:
    """Precomputed per vocabulary (pieces: token id -> bytes); makes per-generation
    logits processors."""

    def __init__(self, pieces: Sequence[bytes]) -> None:
        self.n_vocab = len(pieces)
        # Tokens that are not "complete valid UTF-8 or empty": their per-state moves.
        self.partial: dict[int, dict[State, State]] = {}
        for token, piece in enumerate(pieces):
            if not piece:
                continue
            try:
                piece.decode("utf-8")
                continue
            except UnicodeDecodeError:
                pass
            moves = {}
            for state in STATES:
                nxt = step(state, piece)
                if nxt is not None:
                    moves[state] = nxt
            self.partial[token] = moves
        self.empty = {t for t, p in enumerate(pieces) if not p}
        # State 0 bans the partial tokens that cannot start there; other states allow
        # only the partial tokens (and the empty ones) that fit.
        self.banned_at_start = [t for t, m in self.partial.items() if START not in m]
        self.allowed: dict[State, list[int]] = {
            s: sorted({t for t, m in self.partial.items() if s in m} | self.empty)
            for s in STATES if s != START
        }

    def processor(self) -> Callable[[Any, Any], Any]:
        """A fresh logits processor for one generation (it starts between characters)."""
        import numpy as np

        state = START
        seen = -1
        partial, banned, allowed = self.partial, self.banned_at_start, self.allowed

        def apply(input_ids: Any, logits: Any) -> Any:
            nonlocal state, seen
            n = len(input_ids)
            if seen < 0:
                seen = n  # the prompt ends between characters (ChatML headers end in "\n")
            for token in input_ids[seen:n]:
                moves = partial.get(int(token))
                if moves is not None:
                    state = moves.get(state, START)
                elif int(token) not in self.empty:
                    state = START
            seen = n
            if state == START:
                logits[banned] = -np.inf
            else:
                keep = allowed[state]
                kept = logits[keep].copy()
                logits[:] = -np.inf
                logits[keep] = kept
            return logits

        return apply
