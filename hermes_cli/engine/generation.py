"""One generation over the engine's context: iterate for text, then read `result`."""

from __future__ import annotations

import codecs
import random
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from hermes_cli.engine.params import GenerationResult, SamplingParams, reply_limit
from hermes_cli.errors import ContextOverflowError

if TYPE_CHECKING:
    from hermes_cli.engine.model import Engine


class Generation:
    """A running generation: iterate for text chunks, then read `result`.

    Stopping early (break, `close()`, Ctrl-C) is normal: the result then says
    "interrupted" and the engine's KV cache stays consistent for the next call.
    """

    def __init__(self, engine: Engine, prompt: Sequence[int], params: SamplingParams,
                 grammar: Any | None, strict_utf8: bool = False) -> None:
        self._engine = engine
        self._prompt = list(prompt)
        self._params = params
        self._grammar = grammar
        self._strict_utf8 = strict_utf8
        self._iter: Iterator[str] | None = None
        self.result: GenerationResult | None = None

    def __iter__(self) -> Iterator[str]:
        if self._iter is None:
            self._iter = self._run()
        return self._iter

    def close(self) -> None:
        if self._iter is not None:
            self._iter.close()  # type: ignore[attr-defined]

    def consume(self) -> GenerationResult:
        """Run to the end without streaming; return the result."""
        for _ in self:
            pass
        assert self.result is not None
        return self.result

    def _run(self) -> Iterator[str]:
        engine, llm, params = self._engine, self._engine._llm, self._params
        prompt = self._prompt
        n_ctx = engine.n_ctx
        if len(prompt) >= n_ctx:  # at least one slot must stay free for the reply
            raise ContextOverflowError(len(prompt), n_ctx)
        limit, limit_reason = reply_limit(params, n_ctx - len(prompt))

        reused = engine._reusable_prefix(prompt)
        llm.n_tokens = reused  # generate(reset=False) evaluates from here, dropping the rest
        llm.set_seed(params.seed if params.seed is not None else random.getrandbits(31))

        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pieces, is_eog = engine._piece_cache, engine._eog_cache
        piece_of, eog_of = engine._token_piece, engine._token_is_eog
        chunks: list[str] = []
        ids: list[int] = []
        reason = "interrupted"
        t_start = time.perf_counter()
        t_first = t_start
        tokens = llm.generate(
            prompt[reused:], reset=False, temp=params.temperature, top_p=params.top_p,
            top_k=params.top_k, min_p=params.min_p, repeat_penalty=params.repeat_penalty,
            grammar=self._grammar,
            logits_processor=engine._processors(params, self._strict_utf8),  # type: ignore[arg-type]
        )
        try:
            if limit <= 0:
                reason = limit_reason
                return
            for token in tokens:
                if not ids:
                    t_first = time.perf_counter()
                eog = is_eog.get(token)
                if eog is None:
                    eog = eog_of(token)
                if eog:
                    reason = "stop"
                    break
                ids.append(token)
                piece = pieces.get(token)
                if piece is None:
                    piece = piece_of(token)
                text = decoder.decode(piece)
                if text:
                    chunks.append(text)
                    yield text
                if len(ids) >= limit:
                    reason = limit_reason
                    break
            tail = decoder.decode(b"", final=True)
            if tail:
                chunks.append(tail)
                yield tail
        finally:
            tokens.close()
            t_end = time.perf_counter()
            if not ids:
                t_first = t_end
            self.result = GenerationResult(
                text="".join(chunks), token_ids=ids, finish_reason=reason,
                prompt_tokens=len(prompt), prompt_evaluated=len(prompt) - reused,
                prompt_reused=reused, prompt_seconds=t_first - t_start,
                generation_seconds=t_end - t_first,
            )
