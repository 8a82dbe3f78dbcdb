"""One generation's grammar state, as the sampler asks it: may this token come next,
which tokens are allowed, which are forced, how to close what is open.

Why llguidance and not llama.cpp's GBNF sampler (measured, README "Benchmark"): the
sampler checks only the token it chose (`check`, a few µs), and needs the full set of
allowed tokens (`allowed`) only when that token is rejected. For GBNF that full pass
runs the grammar over every piece of the vocabulary (tens of ms on a 262k vocabulary);
llguidance computes the set as a bitmask in about 0.1 ms. llguidance also enforces more
of JSON Schema (minimum/maximum, multipleOf, email/uri/hostname/ipv4/ipv6/duration
formats, patternProperties), and it is what llama.cpp, vLLM and SGLang use. Grammars are
compiled, and the tokenizer built, in engine/grammars.py.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np

    from hermes_cli.engine.vocab import Vocab

STRUCTURAL_TOKENS = 256  # at most this many allowed tokens: punctuation and whitespace, not content


class Constraint(Protocol):
    """What the sampler asks of a grammar."""

    def check(self, token: int) -> bool:
        """May `token` come next? (Cheap: called on every sampled token.)"""

    def accept(self, token: int) -> None:
        """`token` was taken."""

    def allowed(self) -> np.ndarray:
        """Every token id that may come next (only after `check` said no)."""

    def open(self) -> bool:
        """A span the grammar holds was begun and is not finished."""

    def forced(self) -> list[int]:
        """The tokens the grammar allows no choice about next (empty: the model chooses)."""

    def closing(self, limit: int) -> list[int] | None:
        """A short way to finish what is open, in at most `limit` tokens ([] when nothing
        is open; None when none was found)."""

    def ending_after(self, token: int, limit: int) -> list[int] | None:
        """`closing(limit)` as it would be once `token` (allowed next) is taken; the
        state is left as it is."""


# What closes an open JSON span, in the order tried: a quote, brackets, a comma (an object
# that still lacks a required key needs one; before the digit, which after a number's
# first digit only lengthens it: `3` then `0` went round and no ending was found), the
# shortest values, and the openers of a value that must be an object or array.
_CLOSERS = (b'"', b"}", b"]", b",", b"0", b"null", b"false", b'""', b"[]", b"{}", b"{", b"[")
# A greedy ending can go round in circles inside a format (`0` after `0` in an email's
# local part, which only ends after `@` and a domain): after _STUCK equal steps it looks
# for the shortest run of these bytes, up to _ESCAPE_DEPTH, after which the string may
# end (`@a.aa` before the quote): the delimiters of emails, URIs, dates and times.
_ESCAPE_STEPS = (b"@", b".", b"a", b"0", b"-", b":", b"/", b"T", b"Z")
_STUCK = 3
_ESCAPE_DEPTH = 5
_ESCAPE_NODES = 300  # the search's bound, in tokens tried: about 1 ms on a 49k vocabulary


class Extensions:
    """Which tokens begin with given bytes, per vocabulary (shared by its matchers).

    With `order` (the ids sorted by their bytes, kept with the pieces: engine/grammars.py)
    the tokens that begin with a prefix are one run of it, found by bisection: a scan of
    every piece in Python took 15 ms a prefix on a 262k vocabulary, 0.15 s of a one-shot
    gemma-3 answer. Without it (a test's hand-made pieces) they are scanned for."""

    def __init__(self, pieces: list[bytes], order: Sequence[int] | None = None) -> None:
        self.pieces = pieces
        self._order = order
        self._by_prefix: dict[bytes, np.ndarray] = {}

    def of(self, prefix: bytes) -> np.ndarray:
        found = self._by_prefix.get(prefix)
        if found is None:
            import numpy as np

            if self._order is None:
                found = np.fromiter((t for t, piece in enumerate(self.pieces) if piece.startswith(prefix)),
                                    dtype=np.int32)
            else:
                order, key = self._order, self.pieces.__getitem__
                lo = bisect.bisect_left(order, prefix, key=key)
                above = _successor(prefix)
                hi = len(order) if above is None else bisect.bisect_left(order, above, lo=lo, key=key)
                found = np.array(order[lo:hi], dtype=np.int32)
            self._by_prefix[prefix] = found
        return found


def _successor(prefix: bytes) -> bytes | None:
    """The least bytes above every bytes that begin with `prefix` (None: there are none)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


class Matcher:
    """One generation's grammar state.

    Token healing at the end of a forced span: the span's bytes are tokenized whole, but
    its last token is left to the model when longer tokens begin with it (the key's
    closing `"`, which the model writes merged with the colon as `":`). The model's next
    token must then begin with those bytes: a token that only begins them (a lone space
    where ` "` is forced, which SmolLM2 took for the start of a number) is refused.
    Without it, SmolLM2's fast-forwarded invoices were 20 % more tokens than its own and
    drifted into `" :` and `\n,\n` (README, fast-forward)."""

    def __init__(self, matcher: Any, n_vocab: int, tokenizer: Any = None,
                 extensions: Extensions | None = None) -> None:
        self._m = matcher
        self._n_vocab = n_vocab
        self._tokenizer = tokenizer
        self._closers: list[list[int]] | None = None  # _CLOSERS as this vocabulary's tokens
        self._escape_steps: list[int] | None = None  # _ESCAPE_STEPS' single tokens
        self._quote: list[int] = []
        self._extensions = extensions
        self._heal = b""  # the bytes the next token must begin with (a healed span's end)

    def check(self, token: int) -> bool:
        if self._heal and self._extensions is not None and not self._extensions.pieces[token].startswith(self._heal):
            return False
        return bool(self._m.validate_tokens([token]) == 1)

    def accept(self, token: int) -> None:
        self._m.consume_token(token)
        self._heal = b""

    def _allowed_bits(self) -> np.ndarray:
        """One bit per token id: may it come next (llguidance's mask, unpacked)."""
        import numpy as np
        from llguidance.numpy import allocate_token_bitmask, fill_next_token_bitmask

        mask = allocate_token_bitmask(1, self._n_vocab)
        fill_next_token_bitmask(self._m, mask)
        return np.unpackbits(mask.view(np.uint8), bitorder="little")[: self._n_vocab]

    def allowed(self) -> np.ndarray:
        import numpy as np

        allowed = np.flatnonzero(self._allowed_bits()).astype(np.int32)
        if self._heal and self._extensions is not None:
            healed = allowed[np.isin(allowed, self._extensions.of(self._heal))]
            if len(healed):
                return healed
        return allowed

    def complete(self) -> bool:
        return bool(self._m.is_accepting())

    def open(self) -> bool:
        return not self.complete()

    def forced(self, *, heal: bool = True) -> list[int]:
        """Every byte the grammar forces, tokenized whole (jump-forward, as SGLang does);
        with `heal`, the last token left to the model when it can be extended (above).
        llguidance's own `compute_ff_tokens` leaves out a last token that a longer one
        could extend (` "` of `"expression": "`); the model then picks the token itself,
        and a weak one picks a lone space, meaning a number, and is held to a string it
        never closes (SmolLM2: 2 of 10 forced calls whole within 60 tokens, against 6 of
        10 with the bytes forced whole)."""
        if self._tokenizer is None:  # no tokenizer given: llguidance's own (healed) tokens
            return list(self._m.compute_ff_tokens())
        data = self._m.compute_ff_bytes()
        if not data:
            return []
        tokens = list(self._tokenizer.tokenize_bytes(data))
        tokens = tokens[: self._m.validate_tokens(tokens)]
        if heal and tokens and self._extensions is not None:
            last = self._extensions.pieces[tokens[-1]]
            if (not last.startswith(b"\xff") and len(self._extensions.of(last)) > 1
                    and self._structural_after(tokens)):
                self._heal = last  # the model writes it, merged with what follows if it likes
                tokens.pop()
        return tokens

    def _structural_after(self, tokens: list[int]) -> bool:
        """After `tokens`, does the grammar allow only a few tokens (`":` after a key's
        quote: punctuation and whitespace), rather than free content (the inside of a
        string it opens)? Only there is the last token healed: left free after ` "` that
        opens a value, SmolLM2 wrote `}}</tool_call>` into a forced call's argument."""
        if not self._m.consume_tokens(tokens):
            return False
        try:
            allowed = int(self._allowed_bits().sum())
        finally:
            self._m.rollback(len(tokens))
        return allowed <= STRUCTURAL_TOKENS

    def closing(self, limit: int) -> list[int] | None:
        """The tokens of a short valid ending from here, within `limit` tokens: found
        greedily (the bytes the grammar forces; else the first of `_CLOSERS` it allows;
        else its first allowed token) on the live state, then rolled back, so the state is
        as it was. A few µs per token of the ending; the slot asks only near its limit.
        Not always the shortest (greedy), but always valid: every token was checked."""
        if self.complete():
            return []
        if self._tokenizer is None:
            return None
        if self._closers is None:
            self._closers = [list(self._tokenizer.tokenize_bytes(text)) for text in _CLOSERS]
        closers = self._closers
        heal, self._heal = self._heal, b""  # restored with the state below
        taken: list[int] = []
        last: list[int] = []
        repeats = 0
        try:
            while len(taken) < limit and not self.complete():
                step = self.forced(heal=False)[: limit - len(taken)]
                chosen = not step
                if not step:
                    step = next((seq for seq in closers
                                 if len(seq) <= limit - len(taken) and self._m.validate_tokens(seq) == len(seq)),
                                [])
                if not step:  # the first allowed token that is not whitespace (which only lengthens)
                    allowed = [int(t) for t in self.allowed()]
                    if not allowed:
                        return None
                    step = [next((t for t in allowed if self._tokenizer.decode_bytes([t]).strip()), allowed[0])]
                repeats = repeats + 1 if chosen and step == last else 0
                last = step if chosen else []
                if repeats + 1 >= _STUCK:  # going round: undo the repeats, find the way out
                    undo = len(step) * repeats
                    self._m.rollback(undo)
                    del taken[len(taken) - undo:]
                    escape = self._escape(min(_ESCAPE_DEPTH, limit - len(taken)))
                    if escape is None:
                        return None
                    step, repeats, last = escape, 0, []
                for token in step:
                    if not self._m.consume_token(token):
                        return None
                    taken.append(token)
            return taken if self.complete() else None
        finally:
            if taken:
                self._m.rollback(len(taken))
            self._heal = heal

    def ending_after(self, token: int, limit: int) -> list[int] | None:
        """The ending `closing(limit)` finds once `token` is taken (the token consumed,
        then rolled back: the state is as it was)."""
        if not self._m.consume_token(token):
            return None  # cannot happen for a checked token; no ending is known after it
        heal, self._heal = self._heal, b""  # what accept() leaves
        try:
            return self.closing(limit)
        finally:
            self._m.rollback(1)
            self._heal = heal

    def _escape(self, depth: int) -> list[int] | None:
        """The shortest run of `_ESCAPE_STEPS` (at most `depth`) after which the string
        may end, by iterative deepening on the live state (rolled back), trying at most
        `_ESCAPE_NODES` tokens: the slot asks after every token near its limit, and a
        state with no way out (every step allowed, none ending) would otherwise try 9^5."""
        assert self._tokenizer is not None
        if self._escape_steps is None:
            runs = [list(self._tokenizer.tokenize_bytes(b)) for b in _ESCAPE_STEPS]
            self._escape_steps = [int(run[0]) for run in runs if len(run) == 1]
            self._quote = list(self._tokenizer.tokenize_bytes(b'"'))
        steps, quote = self._escape_steps, self._quote
        path: list[int] = []
        budget = _ESCAPE_NODES

        def search(left: int) -> bool:
            nonlocal budget
            if path and self._m.validate_tokens(quote) == len(quote):
                return True
            if left == 0:
                return False
            for token in steps:
                budget -= 1
                if budget < 0:
                    return False
                if self._m.validate_tokens([token]) == 1 and self._m.consume_token(token):
                    path.append(token)
                    if search(left - 1):
                        return True
                    path.pop()
                    self._m.rollback(1)
            return False

        for bound in range(1, depth + 1):
            if search(bound):
                self._m.rollback(len(path))
                return path
        return None


class LazyMatcher:
    """Free text until `trigger` is written, then a grammar until it is complete."""

    def __init__(self, vocab: Vocab, trigger: str, start: Callable[[str], Matcher]) -> None:
        self._vocab = vocab
        self._trigger = trigger.encode()
        self._last = self._trigger[-1:]
        self._start = start
        self._tail = b""
        self.active: Matcher | None = None

    def check(self, token: int) -> bool:
        if self.active is not None:
            return self.active.check(token)
        piece = self._vocab.piece(token)
        if self._last not in piece:  # cannot complete the trigger: the common, O(1) case
            return True
        window = self._tail + piece
        at = window.find(self._trigger)
        if at < 0 or at + len(self._trigger) == len(window):
            return True  # no trigger, or it ends with this token: the grammar starts after it
        # The trigger ends inside this token: what this token adds of the trigger, and
        # anything after it, is held to the grammar.
        have = max(0, len(self._tail) - at)
        self.active = self._start(self._trigger[have:].decode("utf-8", errors="replace"))
        return self.active.check(token)

    def accept(self, token: int) -> None:
        if self.active is not None:
            self.active.accept(token)
            if self.active.complete():
                self.active, self._tail = None, b""
            return
        window = self._tail + self._vocab.piece(token)
        if window.endswith(self._trigger):
            self.active, self._tail = self._start(""), b""
        else:
            self._tail = window[-len(self._trigger):]

    def allowed(self) -> np.ndarray:
        assert self.active is not None, "a lazy grammar rejects tokens only once active"
        return self.active.allowed()

    def closing(self, limit: int) -> list[int] | None:
        return self.active.closing(limit) if self.active is not None else []

    def ending_after(self, token: int, limit: int) -> list[int] | None:
        return self.active.ending_after(token, limit) if self.active is not None else []

    def open(self) -> bool:
        return self.active is not None

    def forced(self) -> list[int]:
        return self.active.forced() if self.active is not None else []
