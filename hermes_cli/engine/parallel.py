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
from hermes_cli.engine.params import GenerationResult, Grammar, SamplingParams, reply_limit
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
class _Running:
    job: ParallelJob
    slot: Slot
    sampler: Sampler
    pending: list[int]  # ids to decode next
    pos: int


class ParallelDecoder:
    """Decodes jobs on `engine`'s context, which must hold `n_parallel + 1` sequences."""

    def __init__(self, engine: Engine, n_parallel: int) -> None:
        if n_parallel < 1:
            raise UsageError("--parallel must be 1 or more")
        if engine.n_seq_max < n_parallel + 1:
            raise UsageError(f"the model was loaded for {engine.n_seq_max} sequences; "
                             f"--parallel {n_parallel} needs {n_parallel + 1}")
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

    def run(self, next_job: Callable[[], ParallelJob | None], shared_prefix: Sequence[int] = ()
            ) -> Iterator[tuple[Any, GenerationResult | ContextOverflowError]]:
        """Yield (key, result) as each prompt finishes (completion order).

        `next_job` is asked for work whenever a slot is free (None: nothing now); the run
        ends when no slot is busy and it has nothing more. A prompt that does not fit its
        slot's share of the context is yielded with a ContextOverflowError instead.
        """
        engine = self.engine
        prefix = list(shared_prefix)
        engine.forget()  # sequence 0 is a slot now: the single-generation cache is gone
        plen = len(prefix)
        if prefix:
            for _ in self._decode([(t, i, self._prefix_seq, False) for i, t in enumerate(prefix)]):
                pass
        budget = self.slot_room(engine.n_ctx, plen, self.n_parallel)
        slots: list[_Running | None] = [None] * self.n_parallel
        try:
            while True:
                for s in range(self.n_parallel):  # refill free slots at once
                    while slots[s] is None:
                        job = next_job()
                        if job is None:
                            break
                        try:
                            slots[s] = self._start(job, s, prefix, budget)
                        except ContextOverflowError as e:
                            yield job.key, e
                active = [s for s in range(self.n_parallel) if slots[s] is not None]
                if not active:
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
                    run.slot.step(engine.ctx, index)
                for s in active:
                    run = slots[s]
                    assert run is not None
                    if run.slot.finish is None:
                        run.pending = run.slot.ids[-1:]
                        if run.slot.sampler is not None and run.slot.sampler.constraint is not None:
                            run.pending += run.slot.fast_forward()[0]  # decoded in the same batch
                    if run.slot.finish is None:
                        continue
                    run.sampler.close()
                    slots[s] = None
                    yield run.job.key, run.slot.result()
        finally:
            for run in slots:
                if run is not None:
                    run.sampler.close()
            engine.forget()

    def _start(self, job: ParallelJob, s: int, prefix: list[int], budget: int) -> _Running:
        engine = self.engine
        plen = len(prefix) if job.prompt[:len(prefix)] == prefix else 0
        own = job.prompt[plen:]
        if len(own) + 1 > budget:
            raise ContextOverflowError(len(job.prompt), plen + budget)
        engine.drop_sequence(s)
        if plen:
            engine.copy_sequence(self._prefix_seq, s, plen)
        limit, reason = reply_limit(job.params, budget - len(own))
        constraint = engine.grammars.matcher(job.grammar) if job.grammar is not None else None
        sampler = Sampler(engine.vocab, job.params, constraint)
        slot = Slot(engine.vocab, sampler, limit=limit, limit_reason=reason,
                    prompt_tokens=len(job.prompt), reused=plen, started=time.perf_counter())
        if constraint is not None:  # near a tiny limit, the ending may be all there is room for
            own = own + slot.fast_forward(at_start=True)[0]
        return _Running(job, slot, sampler, own, plen)
