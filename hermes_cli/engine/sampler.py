"""Sampling one token: llama.cpp's C sampler chain, with a grammar checked the way
llama.cpp's own `common_sampler_sample` does it.

The chain samples from the model's distribution as if there were no grammar; only the
chosen token is checked against the grammar (`Constraint.check`). Accepted, which is the
usual case, the step cost no Python or numpy work over the vocabulary. Rejected, the
token is drawn again from the allowed tokens only (the grammar's full set), through the
same chain. With plain temperature sampling the result is distributed exactly as
"grammar first"; with truncation samplers it can differ slightly (llama.cpp's caveat).

The chain: top-k, then repetition penalties, then top-p, min-p, temperature and the
seeded draw. Top-k comes before the penalties because llama.cpp's penalty pass is a hash
lookup per candidate (its header warns against running it over a whole vocabulary);
after top-k it sees 40 candidates, not 262k. With top-k off the penalties come first.
"""

from __future__ import annotations

import ctypes
import random
from collections import deque
from typing import TYPE_CHECKING, Any

from hermes_cli.engine.llama import lib
from hermes_cli.engine.params import SamplingParams
from hermes_cli.errors import GrammarDeadEnd

if TYPE_CHECKING:
    from hermes_cli.engine.constraint import Constraint
    from hermes_cli.engine.vocab import Vocab

PENALTY_LAST_N = 64


class Sampler:
    """One generation's sampling state: the chain, the grammar, the reply's recent ids."""

    def __init__(self, vocab: Vocab, params: SamplingParams, constraint: Constraint | None = None) -> None:
        c = self._c = lib()
        self._vocab = vocab
        self.constraint = constraint
        self._ban_eog = params.ignore_eos
        self._chain = chain = c.llama_sampler_chain_init(c.llama_sampler_chain_default_params())
        self._penalties: Any = None
        self._recent: deque[int] = deque(maxlen=PENALTY_LAST_N)

        def add(sampler: Any) -> Any:
            c.llama_sampler_chain_add(chain, sampler)
            return sampler

        if params.ignore_eos and vocab.eog:
            biases = (c.llama_logit_bias * len(vocab.eog))(
                *[c.llama_logit_bias(t, float("-inf")) for t in sorted(vocab.eog)])
            add(c.llama_sampler_init_logit_bias(vocab.n_tokens, len(vocab.eog), biases))
        greedy = params.temperature == 0
        penalize = (params.repeat_penalty != 1.0 or params.frequency_penalty != 0.0
                    or params.presence_penalty != 0.0)
        only_lowers = (params.repeat_penalty >= 1.0 and params.frequency_penalty >= 0.0
                       and params.presence_penalty >= 0.0)
        if greedy and penalize and only_lowers and vocab.n_tokens > 16 * PENALTY_LAST_N:
            # Penalties that only lower the logits of the last PENALTY_LAST_N ids leave
            # the penalised argmax among the raw top PENALTY_LAST_N + 1: exact, without
            # the penalty's hash lookup over the whole vocabulary (246 → 55 µs a token on
            # SmolLM2's 49k, 1050 → 343 on gemma's 262k: README "host time per token").
            # On a vocabulary of a few hundred the lookup is cheaper than the cut.
            add(c.llama_sampler_init_top_k(PENALTY_LAST_N + 1))
        if penalize and (greedy or params.top_k <= 0):
            self._penalties = add(self._new_penalties(params))
        if greedy:
            add(c.llama_sampler_init_greedy())
        else:
            if params.top_k > 0:
                add(c.llama_sampler_init_top_k(params.top_k))
                if penalize:
                    self._penalties = add(self._new_penalties(params))
            if params.top_p < 1.0:
                add(c.llama_sampler_init_top_p(params.top_p, 1))
            if params.min_p > 0.0:
                add(c.llama_sampler_init_min_p(params.min_p, 1))
            add(c.llama_sampler_init_temp(params.temperature))
            add(c.llama_sampler_init_dist(params.seed if params.seed is not None
                                          else random.getrandbits(31)))
        self._fast_forward = params.fast_forward and constraint is not None
        self._cand: Any = None  # the rejection path's candidate buffer, made on first use
        self.resampled = 0  # tokens the grammar rejected (the full-mask path ran)
        self.ending: list[int] | None = None  # set by `sample` when its token left no room to close
        self.after: list[int] | None = None  # set by `sample`: the ending found after its token

    def _new_penalties(self, params: SamplingParams) -> Any:
        return self._c.llama_sampler_init_penalties(self._vocab.n_tokens, PENALTY_LAST_N, params.repeat_penalty,
                                                    params.frequency_penalty, params.presence_penalty)

    def close(self) -> None:
        if self._chain is not None:
            self._c.llama_sampler_free(self._chain)
            self._chain = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # -- the step -------------------------------------------------------------------------

    def sample(self, ctx: Any, index: int, *, room: int | None = None, search: int | None = None) -> int:
        """The next token from the logits at `index` of the last decoded batch.

        `room` (near the reply's limit: that many tokens left): a token after which no
        ending of the grammar fits in what is left is not taken; the ending that fits
        now is kept in `ending` instead, for the slot to write (the model opened an array
        item with required keys, or a long key, one token before the limit). `search`:
        a longer bound to look again within when none fits, so that a greedy ending that
        fails (found within neither) is told from one the token made long (refused only
        then). A token taken leaves the ending found after it in `after`: the slot's
        next ending, not computed twice."""
        token = int(self._c.llama_sampler_sample(self._chain, ctx, index))
        constraint = self.constraint
        self.ending = self.after = None
        if constraint is not None:
            if not constraint.check(token):
                token = self._resample(ctx, index, constraint)
            if room is not None and token not in self._vocab.eog:
                after = constraint.ending_after(token, room - 1)
                if after is None and (search is None or search <= room - 1
                                      or constraint.ending_after(token, search) is not None):
                    ending = constraint.closing(room)
                    if ending is not None:
                        self.ending = ending  # the chain saw the token; nothing is sampled after the ending
                        return token
                self.after = after
            constraint.accept(token)
        if self._penalties is not None:
            self._recent.append(token)
        return token

    def forced(self) -> list[int]:
        """The tokens the grammar forces next, to take without sampling (empty when the
        model has a choice, there is no grammar, or fast-forward is off)."""
        return self.constraint.forced() if self._fast_forward and self.constraint is not None else []

    def take(self, token: int) -> None:
        """`token` was appended without sampling: the chain (penalties, seeded draw) and
        the grammar see it as if it had been sampled."""
        self._c.llama_sampler_accept(self._chain, token)
        if self.constraint is not None:
            self.constraint.accept(token)
        if self._penalties is not None:
            self._recent.append(token)

    def _resample(self, ctx: Any, index: int, constraint: Constraint) -> int:
        """Draw again from the tokens the grammar allows (the rare, full-vocabulary path)."""
        import numpy as np

        c = self._c
        self.resampled += 1
        if self._penalties is not None:  # take back the rejected token's penalty
            c.llama_sampler_reset(self._penalties)
            for t in self._recent:
                c.llama_sampler_accept(self._penalties, t)
        allowed = constraint.allowed()
        if self._ban_eog:  # --ignore-eos: an end only when the grammar allows nothing else
            others = [t for t in allowed.tolist() if t not in self._vocab.eog] if len(allowed) < 4096 \
                else allowed[~np.isin(allowed, list(self._vocab.eog))]
            allowed = np.asarray(others, dtype=np.int32) if len(others) else allowed[:1]
        if len(allowed) == 0:
            raise GrammarDeadEnd("the grammar allows no next token")
        if len(allowed) == 1:
            token = int(allowed[0])
        else:
            n_vocab = self._vocab.n_tokens
            if self._cand is None:
                self._cand = np.zeros(n_vocab, dtype=np.dtype(
                    [("id", np.int32), ("logit", np.float32), ("p", np.float32)], align=True))
            logits = np.ctypeslib.as_array(c.llama_get_logits_ith(ctx, index), shape=(n_vocab,))
            k, cand = len(allowed), self._cand
            cand["id"][:k] = allowed
            cand["logit"][:k] = logits[allowed]
            cand["p"][:k] = 0.0
            array = c.llama_token_data_array(
                cand.ctypes.data_as(ctypes.POINTER(c.llama_token_data)), k, -1, False)
            c.llama_sampler_apply(self._chain, ctypes.byref(array))
            token = int(cand["id"][array.selected])
        c.llama_sampler_accept(self._chain, token)
        return token
