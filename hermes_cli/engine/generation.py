"""One generation over the engine's context: iterate for text, then read `result`.

Stopping early (break, `close()`, Ctrl-C) is normal: the result then says "interrupted"
and the engine's KV bookkeeping stays exact for the next call. Per token the loop is one
llama_decode of the last token, one C sampler call (plus one grammar check when
constrained) and the slot's O(1) step; under a grammar, the tokens it forces go into
the same llama_decode as the sampled one (fast-forward, engine/slot.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from hermes_cli.engine.grammars import Grammars
from hermes_cli.engine.params import GenerationResult, Grammar, SamplingParams, reply_limit
from hermes_cli.engine.prompt_cache import KeptPrefix, StateEngine
from hermes_cli.engine.sampler import Sampler
from hermes_cli.engine.slot import Slot
from hermes_cli.engine.stream import LazyStream
from hermes_cli.engine.vocab import Vocab
from hermes_cli.errors import ContextOverflowError


class DecodingContext(StateEngine, Protocol):
    """What a generation needs of the engine that owns the context (engine/model.py's
    Engine; named here so that this module does not import it back)."""

    vocab: Vocab
    grammars: Grammars
    ctx: Any

    @property
    def n_ctx(self) -> int: ...

    def reuse_prefix(self, prompt: Sequence[int]) -> int: ...

    def evaluate(self, tokens: Sequence[int]) -> None: ...


class Generation(LazyStream):
    def __init__(self, engine: DecodingContext, prompt: list[int], params: SamplingParams,
                 grammar: Grammar | None, kept: KeptPrefix | None = None) -> None:
        super().__init__()
        self._engine = engine
        self._prompt = prompt
        self._params = params
        self._grammar = grammar
        self._kept = kept
        self._slot: Slot | None = None

    def consume(self) -> GenerationResult:
        """Run to the end without streaming; return the result."""
        for _ in self:
            pass
        assert self.result is not None
        return self.result

    def _run(self) -> Iterator[str]:
        engine, prompt = self._engine, self._prompt
        n_ctx = engine.n_ctx
        if len(prompt) >= n_ctx:  # at least one slot must stay free for the reply
            raise ContextOverflowError(len(prompt), n_ctx)
        limit, limit_reason = reply_limit(self._params, n_ctx - len(prompt))
        started = time.perf_counter()
        reused = engine.reuse_prefix(prompt)
        kept, loaded = self._kept, 0
        if kept is not None and not 0 < kept.length < len(prompt):
            kept = None
        if kept is not None and reused < kept.length:
            loaded = kept.cache.restore(engine, prompt[:kept.length])  # the file's, or 0
            reused = loaded or engine.reuse_prefix(prompt)
        self._slot = Slot(engine.vocab, None, limit=limit, limit_reason=limit_reason,
                          prompt_tokens=len(prompt), reused=reused, started=started, loaded=loaded,
                          abandon=self._grammar.abandon if self._grammar is not None else None)
        try:
            if kept is not None and reused < kept.length:  # the prefix alone, kept, then the rest
                engine.evaluate(prompt[reused:kept.length])
                kept.cache.store(engine, prompt[:kept.length])
                reused = kept.length
            engine.evaluate(prompt[reused:])
            # The grammar after the prompt: a tokenizer being built in the background
            # (Engine.prefetch_grammars) had the prompt's evaluation time to finish.
            constraint = engine.grammars.constraint(prompt, self._params, self._grammar)
            slot = self._slot
            slot.sampler = Sampler(engine.vocab, self._params, constraint)
            ctx = engine.ctx
            opened = slot.preface(constraint)
            if opened:
                yield opened
            # Near a tiny limit, the grammar's ending may be all there is room for.
            batch, text = slot.fast_forward(at_start=True) if constraint is not None else ([], "")
            if text:
                yield text
            if batch and slot.finish is None:
                engine.evaluate(batch)
            while slot.finish is None:
                text = slot.step(ctx, -1)
                if text:
                    yield text
                if slot.finish is not None:
                    break
                batch = slot.ids[-1:]
                if constraint is not None:  # the forced tokens after it, in the same batch
                    forced, text = slot.fast_forward()
                    if text:
                        yield text
                    batch += forced
                    if slot.finish is not None:
                        break
                engine.evaluate(batch)
        finally:
            if self._slot.sampler is not None:
                self._slot.sampler.close()
            self.result = self._slot.result()
