"""How a backend and a reply's figures are worded: the chat's title and footer, `/model`,
`--stats` and `/stats`, the closed-to-fit note.

Backends return facts (core/backends.py: `BackendFacts`, and each reply's
`GenerationResult`); the words are here, once, for `ask` and `chat` alike. What a line
says follows what is known: a served engine's context size is not, and a reply from one
carries its own token counts (or none), so those lines say so instead of showing zeros.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hermes_cli.engine.params import GenerationResult

if TYPE_CHECKING:
    from hermes_cli.core.backends import BackendFacts

CONTEXT_WARNING = 0.8  # the footer warns once the conversation fills this share of the context


def title(facts: BackendFacts) -> str:
    """The chat's first line: the model and its context, or the served model and where."""
    return f"{facts.name} · context {facts.n_ctx}" if facts.n_ctx else f"{facts.name} at {facts.where}"


def describe(facts: BackendFacts) -> str:
    """`/model` without an argument: the model file and how it was loaded."""
    if not facts.n_ctx:
        return f"{facts.name} at {facts.where}"
    gpu = "" if facts.gpu_offload_supported else " (no GPU)"
    return (f"{facts.where} · context {facts.n_ctx} (trained {facts.n_ctx_train}) · GPU layers "
            f"{facts.gpu_layers}{gpu} · threads {facts.threads}")


def prompt_room(facts: BackendFacts, tokens: int | None) -> str:
    """" · prompt N of CTX tokens" where both are known, else nothing (a served engine)."""
    return f" · prompt {tokens:,} of {facts.n_ctx:,} tokens" if tokens is not None and facts.n_ctx else ""


def limit_name(closed_by: str | None) -> str:
    """What a reply was cut or closed by, as the user set it."""
    return "the context" if closed_by == "context" else "--max-tokens"


def closed_note(result: GenerationResult) -> str | None:
    """The line saying that an answer was closed early to fit its limit, if it was."""
    if not result.closed:
        return None
    return (f"note: the answer neared {limit_name(result.closed_by)}; the grammar closed what was "
            f"open in its last {_tokens(result.closed)} (strings ended, brackets closed), so it is whole "
            "and valid, but shorter than the model meant")


def stats_line(r: GenerationResult, facts: BackendFacts) -> str:
    """`--stats` and `/stats`: where the time went, and what the prompt cost."""
    if r.from_server:
        prompt = (f"prompt {r.prompt_tokens} tokens ({r.prompt_reused} cached on the server)"
                  if r.usage_known else "prompt tokens unknown (the server sent no usage)")
        reply = f"{r.completion_tokens}" if r.usage_known else f"~{r.completion_tokens} (stream events)"
        return (f"{prompt} · time to first token {r.prompt_seconds:.2f} s · reply {reply} tokens in "
                f"{r.generation_seconds:.2f} s [{r.tokens_per_second:.1f} tok/s] · stop: {r.finish_reason}")
    notes = [f"{r.forced} forced by the grammar"] if r.forced else []
    if r.closed:
        notes.append(f"the last {_tokens(r.closed)} closing what was open, to fit {limit_name(r.closed_by)}")
    forced = f" ({'; '.join(notes)})" if notes else ""
    reused = (f"{r.prompt_reused} reused, {r.prompt_loaded} of them from the prompt cache"
              if r.prompt_loaded else f"{r.prompt_reused} reused")
    return (f"prompt {r.prompt_tokens} tokens ({r.prompt_evaluated} evaluated, {reused}) in "
            f"{r.prompt_seconds:.2f} s [{r.prompt_tokens_per_second:.1f} tok/s] · reply "
            f"{r.completion_tokens} tokens{forced} in {r.generation_seconds:.2f} s "
            f"[{r.tokens_per_second:.1f} tok/s] · stop: {r.finish_reason} · context "
            f"{r.prompt_tokens + r.completion_tokens}/{facts.n_ctx} · threads "
            f"{facts.threads} · gpu layers {facts.gpu_layers}")


def footer(result: GenerationResult, facts: BackendFacts) -> tuple[str, str | None]:
    """The chat's line after a reply, and a warning when the context is nearly full."""
    if result.from_server or not facts.n_ctx:
        return f"{_speed(result)} · first token after {result.prompt_seconds:.2f} s", None
    used, n_ctx = result.prompt_tokens + result.completion_tokens, facts.n_ctx
    warning = None
    if used > CONTEXT_WARNING * n_ctx:
        warning = (f"warning: the context is {100 * used // n_ctx}% full; the oldest turns will "
                   "be left out of what the model sees (/reset starts afresh)")
    return f"{_speed(result)} · context {used}/{n_ctx}", warning


def _tokens(n: int) -> str:
    return "token" if n == 1 else f"{n} tokens"


def _speed(result: GenerationResult) -> str:
    """"N tokens · R tok/s"; from a server that sends no usage the count is its stream
    events, an estimate, and the line says so."""
    if not result.usage_known:
        return f"~{result.completion_tokens} tokens (stream events) · ~{result.tokens_per_second:.1f} tok/s"
    return f"{result.completion_tokens} tokens · {result.tokens_per_second:.1f} tok/s"
