"""Reason, then constrain: a reasoning model thinks freely, then its grammar holds.

Qwen3, Hermes 4, DeepSeek-R1 distills and SmolLM3 write `<think>…</think>` before they
answer. A grammar for a schema or a tool call, applied from the reply's first token,
forbade that section outright (ollama and vLLM turn thinking off when a format is asked
for). Here the grammar waits: the reply may open with the thinking tag, the text inside
is the model's own, and from the closing tag on (after the blank line the templates
write there, if the model writes it) the grammar holds as it would have from the start,
fast-forward included.
The grammar is compiled before the first token, so it is ready when the thinking ends.

The same state machine enforces a thinking budget (`--think-budget N`): after N tokens of
thinking the closing tag is forced and the answer begins. It also carries a reply whose
prompt already opened the section (a template that ends its generation prompt with
`<think>`, as DeepSeek-R1's does): the reply starts inside it.

Offered only where the vocabulary has each tag as one token (every reasoning model's
does): a tag spelled in several tokens would be ambiguous with the grammar's own text
(`<` begins both `<think>` and `<tool_call>`). Per token the cost is a comparison or two
while thinking, and one delegation once the answer begins.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from hermes_cli.engine.params import Thinking

if TYPE_CHECKING:
    import numpy as np

    from hermes_cli.engine.constraint import Constraint
    from hermes_cli.engine.vocab import Vocab

OPEN = "<think>"
CLOSE = "</think>"
MAX_BLANKS = 2  # blank tokens the model may write after `</think>` before the grammar holds

_START, _THINKING, _CLOSING, _AFTER, _ANSWER = range(5)


class Tags:
    """A vocabulary's thinking tags as single token ids, and its blank tokens."""

    def __init__(self, open_id: int, close_id: int, blanks: frozenset[int]) -> None:
        self.open_id = open_id
        self.close_id = close_id
        self.blanks = blanks  # newlines and spaces: what may follow a tag

    @classmethod
    def of(cls, vocab: Vocab) -> Tags | None:
        """The tags, or None when the vocabulary lacks either as one token."""
        ids = []
        for tag in (OPEN, CLOSE):
            one = vocab.tokenize(tag, special=True)
            if len(one) != 1 or vocab.piece(one[0], special=True) != tag.encode():
                return None
            ids.append(one[0])
        blanks = frozenset(t for text in ("\n", "\n\n", " ", "\n\n\n") for t in vocab.tokenize(text))
        return cls(ids[0], ids[1], blanks)


def plan(tags: Tags | None, prompt: Sequence[int], *, constrained: bool, budget: int | None) -> Thinking | None:
    """The thinking a reply after `prompt` gets, or None when nothing need watch it: the
    model has no tags; the prompt closed the section already (`--no-think`); or the reply
    is free text with no budget, beginning outside the section (the common case, kept at
    no cost)."""
    if tags is None:
        return None
    # What the prompt ends with, blanks aside: `<think>` (the reply begins inside the
    # section), `</think>` (an empty section: the model answers now), or anything else.
    end = len(prompt)
    while end > 0 and prompt[end - 1] in tags.blanks:
        end -= 1
    last = prompt[end - 1] if end else None
    if last == tags.close_id:
        return None
    started = last == tags.open_id
    if not (constrained or budget is not None or started):
        return None
    return Thinking(budget=budget, started=started)


class ThinkingFirst:
    """A Constraint: an optional thinking section, then `inner` (None: free text)."""

    def __init__(self, vocab: Vocab, tags: Tags, thinking: Thinking, inner: Constraint | None) -> None:
        self._vocab = vocab
        self._tags = tags
        self._inner = inner
        self._budget = thinking.budget
        self.started = thinking.started
        self._state = _THINKING if thinking.started else _START
        self._thought = 0  # tokens of thinking so far
        self._blanks = 0  # blank tokens written after `</think>`
        self._everything: np.ndarray | None = None
        if self._state == _THINKING and self._spent():
            self._state = _CLOSING

    def _spent(self) -> bool:
        return self._budget is not None and self._thought >= self._budget

    def _blank_allowed(self, token: int) -> bool:
        """After `</think>`, a blank the grammar would not take itself (JSON takes none)."""
        return (token in self._tags.blanks and self._blanks < MAX_BLANKS
                and (self._inner is None or not self._inner.check(token)))

    # -- the sampler's questions -----------------------------------------------------------

    def check(self, token: int) -> bool:
        state, inner = self._state, self._inner
        if state == _THINKING:
            # While a grammar waits, the model may not end before it answers.
            return inner is None or token not in self._vocab.eog
        if state == _CLOSING:
            return token == self._tags.close_id
        if inner is None:
            return True
        if state == _START and token == self._tags.open_id:
            return True
        return inner.check(token) or (state == _AFTER and self._blank_allowed(token))

    def accept(self, token: int) -> None:
        state, tags = self._state, self._tags
        if state == _START and token == tags.open_id:
            self._state = _THINKING
            if self._spent():
                self._state = _CLOSING
        elif state in (_THINKING, _CLOSING):
            if token == tags.close_id:
                self._state = _AFTER if self._inner is not None else _ANSWER
            else:
                self._thought += 1
                if self._spent():
                    self._state = _CLOSING
        elif state == _AFTER and self._blank_allowed(token):
            self._blanks += 1
        else:  # the answer: _START, _AFTER or _ANSWER
            self._state = _ANSWER
            if self._inner is not None:
                self._inner.accept(token)

    def allowed(self) -> np.ndarray:
        import numpy as np

        state, tags, inner = self._state, self._tags, self._inner
        if state == _CLOSING:
            return np.array([tags.close_id], dtype=np.int32)
        if state == _THINKING or inner is None:
            if self._everything is None:
                every = np.arange(self._vocab.n_tokens, dtype=np.int32)
                self._everything = every[~np.isin(every, list(self._vocab.eog))] if inner is not None else every
            return self._everything
        extra = [tags.open_id] if state == _START else [
            t for t in tags.blanks if self._blank_allowed(t)] if state == _AFTER else []
        return np.union1d(inner.allowed(), extra).astype(np.int32) if extra else inner.allowed()

    def open(self) -> bool:
        if self._inner is None:
            return False  # free text: nothing to close near the limit (a budget is forced, not closed)
        return self._state != _ANSWER or self._inner.open()

    def complete(self) -> bool:
        return not self.open()

    def forced(self) -> list[int]:
        if self._state == _CLOSING:
            return [self._tags.close_id]
        if self._state in (_AFTER, _ANSWER) and self._inner is not None:
            return self._inner.forced()
        return []

    def closing(self, limit: int) -> list[int] | None:
        """Near the limit: end the thinking, then the grammar's shortest answer."""
        inner = self._inner
        if inner is None:
            return []
        if self._state not in (_THINKING, _CLOSING):
            return inner.closing(limit)
        if limit < 1:
            return None
        rest = inner.closing(limit - 1)
        return None if rest is None else [self._tags.close_id, *rest]

    def ending_after(self, token: int, limit: int) -> list[int] | None:
        inner = self._inner
        if inner is None:
            return []
        state = self._state
        if state == _ANSWER or (state in (_START, _AFTER) and inner.check(token)
                                and not (state == _START and token == self._tags.open_id)):
            return inner.ending_after(token, limit)
        # Before the answer the inner grammar is untouched: step this machine alone.
        saved = (self._state, self._thought, self._blanks)
        try:
            self.accept(token)
            return self.closing(limit)
        finally:
            self._state, self._thought, self._blanks = saved
