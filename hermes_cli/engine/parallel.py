"""Continuous batching (as llama-server's `-np`): up to N prompts decoded together in one
llama.cpp batch, each in its own sequence of the engine's context; a finished prompt's
slot is refilled at once. Every slot has its own sampler and grammar state, and takes
its tokens through the same per-token step as a single generation (engine/slot.py).

The prefix every prompt shares (the system prompt) is evaluated once, into a sequence of
its own, and copied into each slot's sequence (in a unified KV cache the copy shares
cells: it costs nothing). A prompt that does not start with it is evaluated whole.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from hermes_cli.engine.llama import lib
from hermes_cli.engine.model import N_BATCH, Engine
from hermes_cli.engine.params import GenerationResult, Grammar, SamplingParams, common_prefix_length, reply_limit
from hermes_cli.engine.sampler import Sampler
from hermes_cli.engine.slot import Slot
from hermes_cli.errors import ContextOverflowError, UsageError


@dataclass
class ParallelJob:
    """One prompt for `ParallelDecoder`: any key, its token ids, its sampling, its grammar."""

    key: Any
    prompt: list[int]
    params: SamplingParams
    grammar: Grammar | None = None


@dataclass
class Hooks:
    """What a long-lived caller (`hermes serve`, core/turn_queue.py) adds to a run: each
    piece of text as a slot writes it, a way to stop a slot (its client went away), a
    wait for more work when idle instead of ending, and prefix reuse between jobs."""

    on_text: Callable[[Any, str], None] | None = None
    stop: Callable[[Any], bool] | None = None
    wait: Callable[[], bool] | None = None
    reuse: bool = False


# A prefix held by another slot is copied only when it is this much longer than what the
# chosen slot holds itself (a copy shares cells, but a short one saves little).
MIN_COPY = 16


@dataclass
class _Running:
    job: ParallelJob
    slot: Slot
    sampler: Sampler
    pending: list[int]  # ids to decode next
    pos: int


class ParallelDecoder:
    """Decodes jobs on `engine`'s context, which must hold `n_parallel + 1` sequences."""

    def __init__(self, engine: Engine, n_parallel: int, *, prefix: bool = True) -> None:
        """`prefix`: runs may share a prefix, evaluated once in a sequence of its own."""
        if n_parallel < 1:
            raise UsageError("--parallel must be 1 or more")
        needed = n_parallel + (1 if prefix else 0)
        if engine.n_seq_max < needed:
            raise UsageError(f"the model was loaded for {engine.n_seq_max} sequences; "
                             f"--parallel {n_parallel} needs {needed}")
        self.engine = engine
        self.n_parallel = n_parallel
        self._c = lib()  # the batch is ours; the context and its KV cache are the engine's
        self._batch = self._c.llama_batch_init(N_BATCH, 0, 1)
        self._prefix_seq = n_parallel

    def close(self) -> None:
        if self._batch is not None:
            self._c.llama_batch_free(self._batch)
            self._batch = None

    @staticmethod
    def slot_room(n_ctx: int, prefix_len: int, n_parallel: int) -> int:
        """Each slot's share of the context after the shared prefix."""
        return (n_ctx - prefix_len) // n_parallel

    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> Iterator[tuple[int, int]]:
        """Decode (token, position, sequence, wants logits) in N_BATCH chunks; after each
        chunk yield (sequence, index) for its entries that want logits, while valid."""
        b = self._batch
        for start in range(0, len(entries), N_BATCH):
            chunk = entries[start:start + N_BATCH]
            for j, (tok, pos, seq, logits) in enumerate(chunk):
                b.token[j], b.pos[j] = tok, pos
                b.seq_id[j][0], b.n_seq_id[j], b.logits[j] = seq, 1, logits
            b.n_tokens = len(chunk)
            self.engine.decode_batch(b, "a batch")
            for j, (_tok, _pos, seq, logits) in enumerate(chunk):
                if logits:
                    yield seq, j

    def run(self, next_job: Callable[[], ParallelJob | None], shared_prefix: Sequence[int] = (),
            hooks: Hooks | None = None) -> Iterator[tuple[Any, GenerationResult | ContextOverflowError]]:
        """Yield (key, result) as each prompt finishes (completion order).

        `next_job` is asked for work whenever a slot is free (None: nothing now); the run
        ends when no slot is busy and it has nothing more (unless `hooks.wait` says to look
        again). A prompt that does not fit its slot's share of the context is yielded with
        a ContextOverflowError instead.
        """
        engine = self.engine
        hooks = hooks or Hooks()
        prefix = list(shared_prefix)
        if prefix and self._prefix_seq >= engine.n_seq_max:
            raise UsageError("this decoder was made without a sequence for a shared prefix")
        engine.forget()  # sequence 0 is a slot now: the single-generation cache is gone
        plen = len(prefix)
        if prefix:
            for _ in self._decode([(t, i, self._prefix_seq, False) for i, t in enumerate(prefix)]):
                pass
        budget = self.slot_room(engine.n_ctx, plen, self.n_parallel)
        slots: list[_Running | None] = [None] * self.n_parallel
        held: list[list[int]] = [[] for _ in range(self.n_parallel)]  # what an idle slot's sequence holds

        def holds(t: int) -> list[int]:
            run = slots[t]
            return held[t] if run is None else (run.job.prompt + run.slot.ids)[:run.pos]

        try:
            while True:
                free = [s for s in range(self.n_parallel) if slots[s] is None]
                while free:  # refill free slots at once
                    job = next_job()
                    if job is None:
                        break
                    s, reuse = self._place(job.prompt, free, holds) if hooks.reuse else (free[0], None)
                    try:
                        slots[s] = self._start(job, s, prefix, budget, reuse, hooks.on_text)
                        free.remove(s)
                    except ContextOverflowError as e:
                        yield job.key, e
                active = [s for s in range(self.n_parallel) if slots[s] is not None]
                if not active:
                    if hooks.wait is not None and hooks.wait():
                        continue
                    return
                entries: list[tuple[int, int, int, bool]] = []
                for s in active:
                    run = slots[s]
                    assert run is not None
                    last = len(run.pending) - 1
                    entries += [(t, run.pos + i, s, i == last) for i, t in enumerate(run.pending)]
                    run.pos += len(run.pending)
                    run.pending = []
                for s, index in self._decode(entries):
                    run = slots[s]
                    assert run is not None
                    text = run.slot.step(engine.ctx, index)
                    if text and hooks.on_text is not None:
                        hooks.on_text(run.job.key, text)
                for s in active:
                    run = slots[s]
                    assert run is not None
                    if run.slot.finish is None:
                        run.pending = run.slot.ids[-1:]
                        if run.slot.sampler is not None and run.slot.sampler.constraint is not None:
                            forced, text = run.slot.fast_forward()  # decoded in the same batch
                            run.pending += forced
                            if text and hooks.on_text is not None:
                                hooks.on_text(run.job.key, text)
                    stopped = run.slot.finish is None and hooks.stop is not None and hooks.stop(run.job.key)
                    if run.slot.finish is None and not stopped:
                        continue
                    run.sampler.close()
                    if hooks.reuse:  # what the sequence keeps, for the next job's prefix
                        held[s] = holds(s)
                    slots[s] = None
                    yield run.job.key, run.slot.result()  # a stopped one: "interrupted"
        finally:
            for run in slots:
                if run is not None:
                    run.sampler.close()
            engine.forget()

    def _place(self, prompt: list[int], free: list[int], holds: Callable[[int], list[int]]
               ) -> tuple[int, tuple[int, int]]:
        """The free slot for `prompt` and (source sequence, tokens) to reuse: the free slot
        whose sequence shares the longest prefix with it (a chat's next turn lands where
        its last one was), or, when another slot, busy or not, shares longer by
        MIN_COPY tokens, that prefix copied from there (a system prompt every client
        sends); at least one token is left to evaluate, for fresh logits."""
        cap = len(prompt) - 1
        best, best_n = free[0], -1
        for s in free:
            n = common_prefix_length(holds(s), prompt)
            if n > best_n:
                best, best_n = s, n
        source, n = best, min(best_n, cap)
        if not self.engine.kv_unified:  # a copy between sequences would copy whole KV buffers
            return best, (source, max(n, 0))
        for t in range(self.n_parallel):
            shared = min(common_prefix_length(holds(t), prompt), cap) if t != best else 0
            if shared >= n + MIN_COPY:
                source, n = t, shared
        return best, (source, max(n, 0))

    def _start(self, job: ParallelJob, s: int, prefix: list[int], budget: int,
               reuse: tuple[int, int] | None, on_text: Callable[[Any, str], None] | None) -> _Running:
        engine = self.engine
        plen = len(prefix) if job.prompt[:len(prefix)] == prefix else 0
        cells = len(job.prompt) - plen  # the slot's own share of the context (the prefix's is shared)
        if cells + 1 > budget:
            raise ContextOverflowError(len(job.prompt), plen + budget)
        if reuse is not None:  # what the slot's sequence (or another's) already holds
            source, n = reuse
            if source == s:
                plen = engine.trim_sequence(s, n)
            else:
                engine.drop_sequence(s)
                engine.copy_sequence(source, s, n)
                plen = n
        else:
            engine.drop_sequence(s)
            if plen:
                engine.copy_sequence(self._prefix_seq, s, plen)
        own = job.prompt[plen:]
        limit, reason = reply_limit(job.params, budget - cells)
        constraint = engine.grammars.constraint(job.prompt, job.params, job.grammar)
        sampler = Sampler(engine.vocab, job.params, constraint)
        slot = Slot(engine.vocab, sampler, limit=limit, limit_reason=reason,
                    prompt_tokens=len(job.prompt), reused=plen, started=time.perf_counter(),
                    abandon=job.grammar.abandon if job.grammar is not None else None)
        opened = slot.preface(constraint)
        if opened and on_text is not None:
            on_text(job.key, opened)
        if constraint is not None:  # near a tiny limit, the ending may be all there is room for
            own = own + slot.fast_forward(at_start=True)[0]
        return _Running(job, slot, sampler, own, plen)
