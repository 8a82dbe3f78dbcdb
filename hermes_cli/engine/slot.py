"""The per-token step, shared by single and parallel generation.

A slot is one reply being written. After llama.cpp has decoded a batch, `step` samples
the slot's next token from its logits, stops on any end-of-generation id or at the reply
limit, and turns the token into text: a dict lookup for its bytes and one step of an
incremental UTF-8 decoder, so a character split over several tokens appears once whole.
Everything here is O(1) per token; the grammar's work lives in the sampler.

Fast-forward (`fast_forward`): after a token, the tokens the grammar leaves no choice
about (a property name and its quotes, a tool call's `{"name": "calculate", "arguments":
{"`) are taken at once, unsampled; the caller evaluates them in one batch with logits
only at the last. Besides time, this keeps a weak model on the grammar's own
tokenization: SmolLM2, left to write `"expression": ` token by token, wrote a lone space
where it meant a number and then a string that never closed.
"""

from __future__ import annotations

import codecs
import time
from typing import Any

from hermes_cli.engine.params import GenerationResult
from hermes_cli.engine.sampler import Sampler
from hermes_cli.engine.thinking import OPEN, ThinkingFirst
from hermes_cli.engine.vocab import Vocab

# Answers that fit their budget: this near the limit a slot asks its grammar for a short
# valid ending after every token, and takes it (unsampled, like a forced span) once it
# leaves fewer than CLOSING_MARGIN tokens to spare. A token the model writes can lengthen
# the ending by far more (a `,` before an array item of required keys): once what is left
# is within CLOSING_GROWTH tokens of the last ending seen, a sampled token after which no
# ending fits is refused, and the ending that fits is taken instead (Slot._room; about
# 0.4 ms a token for an 8-key record's ending, so not asked further from the limit).
# Before the window, the ending's length is probed every CLOSING_PROBE tokens (up to
# CLOSING_LONGEST tokens long): an object with many required keys not yet written needs
# an ending longer than the window (JSONSchemaBench's o12346 wants 20 keys), and from
# the probe that finds it nearly as long as what is left, it is asked after every token.
CLOSING_WINDOW = 64
CLOSING_GROWTH = 96
CLOSING_MARGIN = 4
CLOSING_PROBE = 16
CLOSING_LONGEST = 512


class Slot:
    def __init__(self, vocab: Vocab, sampler: Sampler | None, *, limit: int, limit_reason: str,
                 prompt_tokens: int, reused: int, started: float, loaded: int = 0,
                 abandon: str | None = None) -> None:
        self._vocab = vocab
        self._pieces = vocab.text_pieces
        self._eog = vocab.eog
        self.sampler = sampler
        self.limit = limit
        self.limit_reason = limit_reason
        self.prompt_tokens = prompt_tokens
        self.reused = reused
        self.loaded = loaded  # of the reused, those loaded from the prompt cache (engine/prompt_cache.py)
        self.started = started
        self.first: float | None = None
        self.ids: list[int] = []
        self.forced = 0
        self.closed = 0  # tokens of an ending taken to fit the limit
        self._closing_watch = False  # a probe found a long ending: ask for it every token
        self._next_probe = 0  # the reply length at which the ending is next probed
        self._ending_seen: int | None = None  # the length of the last ending computed
        self._chunks: list[str] = []
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.finish: str | None = limit_reason if limit <= 0 else None
        self._abandon = abandon  # the grammar's `abandon` text (engine/params.py: Grammar)
        self._tail = ""  # the last characters written, while it is watched for
        self.abandoned = False

    def preface(self, constraint: object) -> str:
        """The text a reply begins with before its first token: `<think>` when the prompt
        opened the thinking section (engine/thinking.py), so the reply reads as the model's
        whole section to every reader of it; else ""."""
        if isinstance(constraint, ThinkingFirst) and constraint.started:
            self._chunks.append(OPEN)
            return OPEN
        return ""

    def step(self, ctx: Any, index: int) -> str:
        """Sample and take the next token; return the text it completes (maybe "").
        Sets `finish` when the reply is over; the token to decode next is `ids[-1]`."""
        assert self.sampler is not None
        room, search = self._room()
        token = self.sampler.sample(ctx, index, room=room, search=search)
        if self.first is None:
            self.first = time.perf_counter()
        if self.sampler.ending is not None:  # the token would leave no room: close instead
            return self._take(self.sampler.ending, self.sampler.ending)[1]
        if token in self._eog:
            self.finish = "stop"
            return self._flush()
        return self._append(token)

    def _append(self, token: int) -> str:
        self.ids.append(token)
        piece = self._pieces.get(token)
        if piece is None:
            piece = self._vocab.piece(token)
        text = self._decoder.decode(piece)
        if text:
            self._chunks.append(text)
            if self._abandon is not None and self._abandoned_here(text):
                self.abandoned, self.finish = True, "stop"
                return text + self._flush()
        if len(self.ids) >= self.limit:
            self.finish = self.limit_reason
            text += self._flush()
        return text

    def _abandoned_here(self, text: str) -> bool:
        """Whether the `abandon` text ends in what was just written, while the grammar holds
        an unfinished span (not while a reasoning model thinks). O(1): the text's last
        character must be the tag's before anything is searched."""
        assert self._abandon is not None
        tail = (self._tail + text)[-2 * len(self._abandon):]
        self._tail = tail
        if self._abandon[-1] not in text or self._abandon not in tail:
            return False
        constraint = self.sampler.constraint if self.sampler is not None else None
        return (constraint is not None and constraint.open()
                and not getattr(constraint, "thinking", False))

    def fast_forward(self, *, at_start: bool = False) -> tuple[list[int], str]:
        """Take the tokens the grammar forces next, or, near the limit, the ending that
        closes what is open; return them (to evaluate) and their text. Stops at an
        end-of-generation token or the reply limit, like `step`.

        `at_start`: before the reply's first token only an ending is taken. The prompt's
        logits are there anyway, so the model picks the first token among the ways to
        write the forced bytes (`{` then `"`, not the grammar's `{"`) at no extra decode,
        and the rest of the span follows it in the same batch. Forced whole, SmolLM2's
        greedy record began with a token it never writes there, and it then wrote
        another answer ("Madrid" for "a member from Paris")."""
        assert self.sampler is not None
        ending = self._ending()
        forced = ending if ending is not None else [] if at_start else self.sampler.forced()
        if not forced:
            return [], ""
        if self.first is None:
            self.first = time.perf_counter()
        return self._take(forced, ending)

    def _take(self, forced: list[int], ending: list[int] | None) -> tuple[list[int], str]:
        """Append `forced` unsampled (an `ending` closes the reply once all of it is in)."""
        assert self.sampler is not None
        taken: list[int] = []
        texts: list[str] = []
        for token in forced:
            if token in self._eog:
                self.finish = "stop"
                texts.append(self._flush())
                break
            self.sampler.take(token)
            taken.append(token)
            texts.append(self._append(token))
            if self.finish is not None:
                break
        if ending is not None and len(taken) == len(ending):  # whole and valid: the reply is done
            self.closed = len(taken)
            if self.finish is None:
                texts.append(self._flush())
            self.finish = "stop"
        else:
            self.forced += len(taken)
        return taken, "".join(texts)

    def _room(self) -> tuple[int | None, int | None]:
        """The tokens left, when so few that a sampled token must leave room for an
        ending (in the watched window, or within CLOSING_GROWTH tokens of the last ending
        the probe saw: a greedy ending is a few µs a token, asked only this near); and
        the bound within which to look again when none fits. In the window any token
        after which no ending is found is refused; before it, only one whose ending is
        found, too long (a greedy ending that fails far from the limit is no reason to
        stop)."""
        left = self.limit - len(self.ids)
        constraint = self.sampler.constraint if self.sampler is not None else None
        if constraint is None or left > CLOSING_LONGEST or not constraint.open():
            return None, None
        if left <= CLOSING_WINDOW or self._closing_watch:
            return left, None
        seen = self._ending_seen
        return (left, CLOSING_LONGEST) if seen is not None and left - seen <= CLOSING_GROWTH else (None, None)

    def _closing(self, left: int) -> list[int] | None:
        """The grammar's ending within `left`: the one the sampler found after the token
        just taken when it looked (the same state and bound), else computed now."""
        assert self.sampler is not None and self.sampler.constraint is not None
        ending, self.sampler.after = self.sampler.after, None
        if ending is None:
            ending = self.sampler.constraint.closing(left)
        self._ending_seen = None if ending is None else len(ending)
        return ending

    def _ending(self) -> list[int] | None:
        """The grammar's ending to take now, when the limit is near enough to need it."""
        assert self.sampler is not None
        constraint = self.sampler.constraint
        left = self.limit - len(self.ids)
        if constraint is None or not constraint.open():
            return None
        if left > CLOSING_WINDOW and not self._closing_watch:
            # A forced span moves several tokens at once, so the probe goes by position
            # (a multiple of CLOSING_PROBE could be stepped over), not by a modulo.
            if len(self.ids) < self._next_probe or left > CLOSING_LONGEST:
                return None
            self._next_probe = len(self.ids) + CLOSING_PROBE
            ending = self._closing(left)
            if ending is None or len(ending) + CLOSING_MARGIN + CLOSING_PROBE < left:
                return None
            self._closing_watch = True  # the ending is long: watch it from now on
        else:
            ending = self._closing(left)
        if not ending or len(ending) + CLOSING_MARGIN < left:
            return None
        return ending

    def _flush(self) -> str:
        tail = self._decoder.decode(b"", final=True)
        if tail:
            self._chunks.append(tail)
        return tail

    def result(self) -> GenerationResult:
        """What the reply produced and cost ("interrupted" when it did not finish)."""
        if self.finish is None:
            self._flush()
        end = time.perf_counter()
        first = self.first if self.first is not None else end
        return GenerationResult(
            text="".join(self._chunks), token_ids=self.ids, finish_reason=self.finish or "interrupted",
            prompt_tokens=self.prompt_tokens, prompt_evaluated=self.prompt_tokens - self.reused,
            prompt_reused=self.reused, prompt_loaded=self.loaded, prompt_seconds=first - self.started,
            generation_seconds=end - first,
            resampled=self.sampler.resampled if self.sampler is not None else 0, forced=self.forced,
            closed=self.closed, closed_by=self.limit_reason if self.closed else None, abandoned=self.abandoned,
            grammar_open=self.sampler is not None and self.sampler.constraint is not None
            and self.sampler.constraint.open())
