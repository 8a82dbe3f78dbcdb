"""Continuous batching: many prompts decoded together in one llama.cpp batch."""

from __future__ import annotations

import codecs
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from hermes_cli.engine.model import Engine
from hermes_cli.engine.params import GenerationResult, SamplingParams, reply_limit
from hermes_cli.engine.quiet import quiet
from hermes_cli.errors import ContextOverflowError, UsageError


@dataclass
class ParallelJob:
    """One prompt for `ParallelDecoder`: any key, its token ids, its sampling."""

    key: Any
    prompt: list[int]
    params: SamplingParams


class ParallelDecoder:
    """Continuous batching (as llama-server's `-np`): up to `n_parallel` prompts decoded
    together in one llama.cpp batch, one KV cache, one sequence id per prompt; a
    finished prompt's slot is refilled at once.

    The prefix every prompt shares (the system prompt) is evaluated once and copied into
    each slot's sequence (in a unified KV cache the copy shares cells, it costs nothing).
    Each slot samples with its own chain, built exactly as `Llama.generate` builds it, so
    with the same seeds the text matches a one-at-a-time run wherever llama.cpp's
    batched arithmetic gives the same logits.
    """

    def __init__(self, engine: Engine, n_parallel: int) -> None:
        import llama_cpp
        from llama_cpp import _internals

        if n_parallel < 1:
            raise UsageError("--parallel must be 1 or more")
        self.engine = engine
        self.n_parallel = n_parallel
        self._lib, self._internals = llama_cpp, _internals
        llm = engine._llm
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = engine.n_ctx
        params.n_batch = params.n_ubatch = 512
        params.n_seq_max = n_parallel + 1  # one more: the shared prefix lives in its own
        params.kv_unified = True
        params.n_threads = params.n_threads_batch = engine.info.n_threads
        with quiet(engine.info.verbose):
            self._ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
        self._mem = self._ctx.memory
        self._batch = _internals.LlamaBatch(n_tokens=params.n_batch, embd=0, n_seq_max=1,
                                            verbose=False)
        self._n_batch = params.n_batch
        self._prefix_seq = n_parallel

    def close(self) -> None:
        self._batch.close()
        self._ctx.close()

    @staticmethod
    def slot_room(n_ctx: int, prefix_len: int, n_parallel: int) -> int:
        """Each slot's share of the context after the shared prefix."""
        return (n_ctx - prefix_len) // n_parallel

    def _sampler(self, p: SamplingParams) -> Any:
        s = self._internals.LlamaSampler()
        n_vocab = self._lib.llama_vocab_n_tokens(self.engine._vocab)
        if p.ignore_eos:
            s.add_logit_bias(n_vocab, {t: float("-inf") for t in self.engine.eog_tokens()})
        if p.repeat_penalty != 1.0:  # 1.0 is a no-op: skip its pass over the vocabulary
            s.add_penalties(n_vocab, 64, p.repeat_penalty, 0.0, 0.0)
        if p.temperature == 0:
            s.add_greedy()
        else:
            s.add_top_k(p.top_k)
            s.add_typical(1.0, 1)
            s.add_top_p(p.top_p, 1)
            s.add_min_p(p.min_p, 1)
            s.add_temp(p.temperature)
            s.add_dist(p.seed if p.seed is not None else random.getrandbits(31))
        return s

    def _decode(self, entries: list[tuple[int, int, int, bool]],
                after_chunk: Any | None = None) -> None:
        """entries: (token, position, sequence, wants logits), decoded in n_batch chunks;
        `after_chunk(start, n)` runs after each, while that chunk's logits are valid."""
        for start in range(0, len(entries), self._n_batch):
            chunk = entries[start:start + self._n_batch]
            b = self._batch.batch
            for j, (tok, pos, seq, logits) in enumerate(chunk):
                b.token[j], b.pos[j] = tok, pos
                b.seq_id[j][0], b.n_seq_id[j], b.logits[j] = seq, 1, logits
            b.n_tokens = len(chunk)
            self._ctx.decode(self._batch)
            if after_chunk is not None:
                after_chunk(start, len(chunk))

    def run(self, jobs: Iterator[ParallelJob] | list[ParallelJob],
            shared_prefix: Sequence[int] = ()) -> Iterator[tuple[Any, GenerationResult]]:
        """Yield (key, result) as each prompt finishes (completion order)."""
        lib, engine = self._lib, self.engine
        jobs = iter(jobs)
        prefix = list(shared_prefix)
        lib.llama_memory_clear(self._mem, True)
        if prefix:
            self._decode([(t, i, self._prefix_seq, False) for i, t in enumerate(prefix)])
        plen = len(prefix)
        budget = self.slot_room(engine.n_ctx, plen, self.n_parallel)
        slots: list[dict[str, Any] | None] = [None] * self.n_parallel
        pieces, is_eog = engine._piece_cache, engine._eog_cache
        exhausted = False
        while True:
            for s in range(self.n_parallel):  # refill free slots at once
                if slots[s] is None and not exhausted:
                    job = next(jobs, None)
                    if job is None:
                        exhausted = True
                        break
                    if job.prompt[:plen] != prefix:
                        raise ValueError("a job does not start with the shared prefix")
                    own = job.prompt[plen:]
                    if len(own) + 1 > budget:
                        raise ContextOverflowError(len(job.prompt), plen + budget)
                    lib.llama_memory_seq_rm(self._mem, s, -1, -1)
                    if plen:
                        lib.llama_memory_seq_cp(self._mem, self._prefix_seq, s, 0, plen)
                    limit, reason = reply_limit(job.params, budget - len(own))
                    slots[s] = {"job": job, "pending": own, "pos": plen, "ids": [], "chunks": [],
                                "limit": limit, "sampler": self._sampler(job.params), "t0": time.perf_counter(),
                                "t_first": None, "decoder": codecs.getincrementaldecoder("utf-8")("replace"),
                                "reason": reason}
            active = [s for s in range(self.n_parallel) if slots[s] is not None]
            if not active:
                return
            entries: list[tuple[int, int, int, bool]] = []
            for s in active:
                slot = slots[s]
                assert slot is not None
                toks = slot["pending"]
                for i, t in enumerate(toks):
                    entries.append((t, slot["pos"] + i, s, i == len(toks) - 1))
                slot["pos"] += len(toks)
                slot["pending"] = []
            last_entry = {e[2]: i for i, e in enumerate(entries) if e[3]}

            def sample_ready(start: int, n: int, last_entry: dict[int, int] = last_entry) -> None:
                for seq, i in last_entry.items():
                    if start <= i < start + n:
                        ready = slots[seq]
                        assert ready is not None
                        ready["sampled"] = ready["sampler"].sample(self._ctx, i - start)

            self._decode(entries, sample_ready)
            for s in active:
                slot = slots[s]
                assert slot is not None
                token = slot.pop("sampled")
                now = time.perf_counter()
                if slot["t_first"] is None:
                    slot["t_first"] = now
                eog = is_eog.get(token)
                if eog is None:
                    eog = engine._token_is_eog(token)
                finished = None
                if eog:
                    finished = "stop"
                else:
                    slot["ids"].append(token)
                    piece = pieces.get(token)
                    if piece is None:
                        piece = engine._token_piece(token)
                    text = slot["decoder"].decode(piece)
                    if text:
                        slot["chunks"].append(text)
                    if len(slot["ids"]) >= slot["limit"]:
                        finished = slot["reason"]
                    else:
                        slot["pending"] = [token]
                if finished:
                    slot["chunks"].append(slot["decoder"].decode(b"", final=True))
                    slot["sampler"].close()
                    job = slot["job"]
                    yield job.key, GenerationResult(
                        text="".join(slot["chunks"]), token_ids=slot["ids"], finish_reason=finished,
                        prompt_tokens=len(job.prompt), prompt_evaluated=len(job.prompt) - plen, prompt_reused=plen,
                        prompt_seconds=slot["t_first"] - slot["t0"],
                        generation_seconds=now - slot["t_first"])
                    slots[s] = None
