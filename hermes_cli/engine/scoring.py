"""Exact log-probabilities of whole continuations, for decision mode (`ask --choices`).

A label is not sampled: each label's full token sequence, then the end of the reply, is
scored from the model's own logits, log P(label) = Σ log softmax(logits)[token] over its
tokens, plus log Σ P(end-of-generation token) after it (the answer ends there, so
"bill" does not win by being the start of "billing"). The prompt is evaluated once; each
label re-uses the KV cache's longest common prefix (the prompt, and any tokens the labels
share), so the cost is about one single-token decode per label token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _log_softmax(engine: Any) -> np.ndarray:
    """The log-probabilities after the last evaluated token (float64, the whole vocabulary)."""
    c = engine._c
    raw = np.ctypeslib.as_array(c.llama_get_logits_ith(engine._live_ctx(), -1), shape=(engine.vocab.n_tokens,))
    logits = raw.astype(np.float64)
    top = logits.max()
    return logits - top - np.log(np.exp(logits - top).sum())


_END = -1  # the end of the reply, in a trie of labels


def continuation_logprobs(engine: Any, prompt: Sequence[int], continuations: Sequence[Sequence[int]],
                          ends: Sequence[int]) -> list[float]:
    """log P(continuation, then one of `ends`) after `prompt`, for each continuation.

    The continuations are walked as a trie, prefix before extension: each distinct prefix
    is decoded once (the prompt as a batch, then one token at a time), and every
    probability read after it comes from that one decode, so labels that share tokens
    are scored from the same logits, as the model would write them."""
    needed: dict[tuple[int, ...], set[int]] = {}
    for tokens in continuations:
        for i in range(len(tokens) + 1):
            needed.setdefault(tuple(tokens[:i]), set()).add(tokens[i] if i < len(tokens) else _END)
    values: dict[tuple[tuple[int, ...], int], float] = {}
    for node in sorted(needed):  # lexicographic: every prefix right before its extensions
        context = [*prompt, *node]
        keep = engine.reuse_prefix(context)
        engine.evaluate(context[keep:])
        logp = _log_softmax(engine)
        for token in needed[node]:
            values[(node, token)] = (float(np.logaddexp.reduce(logp[list(ends)])) if token == _END
                                     else float(logp[token]))
    return [sum(values[(tuple(tokens[:i]), tokens[i] if i < len(tokens) else _END)]
                for i in range(len(tokens) + 1)) for tokens in continuations]


def normalized(logprobs: Sequence[float]) -> list[float]:
    """The probabilities of the choices, given that the answer is one of them."""
    arr = np.asarray(logprobs, dtype=np.float64)
    arr = np.exp(arr - arr.max())
    return list(map(float, arr / arr.sum()))
