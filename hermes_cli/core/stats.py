"""One line of figures about a reply, shared by `--stats`, `/stats` and the batch records."""

from __future__ import annotations

from hermes_cli.engine.model import Engine
from hermes_cli.engine.params import GenerationResult


def format_stats(result: GenerationResult, engine: Engine | None) -> str:
    if engine is None:  # a served engine: its usage figures and our time to first token
        prompt = (f"prompt {result.prompt_tokens} tokens ({result.prompt_reused} cached on the server)"
                  if result.usage_known else "prompt tokens unknown (the server sent no usage)")
        reply = (f"{result.completion_tokens}" if result.usage_known
                 else f"~{result.completion_tokens} (stream events)")
        return (f"{prompt} · time to first token {result.prompt_seconds:.2f} s · reply {reply} "
                f"tokens in {result.generation_seconds:.2f} s [{result.tokens_per_second:.1f} tok/s] · "
                f"stop: {result.finish_reason}")
    return (
        f"prompt {result.prompt_tokens} tokens ({result.prompt_evaluated} evaluated, "
        f"{result.prompt_reused} reused) in {result.prompt_seconds:.2f} s "
        f"[{result.prompt_tokens_per_second:.1f} tok/s] · reply {result.completion_tokens} "
        f"tokens{f' ({result.forced} forced by the grammar)' if result.forced else ''} in "
        f"{result.generation_seconds:.2f} s [{result.tokens_per_second:.1f} tok/s] · "
        f"stop: {result.finish_reason} · context {result.prompt_tokens + result.completion_tokens}"
        f"/{engine.n_ctx} · threads {engine.info.n_threads} · gpu layers {engine.info.n_gpu_layers}"
    )
