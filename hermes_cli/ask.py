"""`hermes ask`: one prompt in, the streamed answer on stdout, nothing else there.

Everything that is not the answer (load status, stats, warnings, llama.cpp's log with
--verbose) goes to stderr, so `hermes ask ... > out.txt` and `| jq` see only the answer.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from hermes_cli.chatml import ChatML, Message
from hermes_cli.engine import Engine, GenerationResult, SamplingParams
from hermes_cli.errors import UsageError
from hermes_cli.hub import resolve_model

if TYPE_CHECKING:
    from hermes_cli.jsonmode import JsonMode
    from hermes_cli.tools import Tool


@dataclass
class ToolOptions:
    tools: dict[str, Tool]
    choice: str = "auto"
    max_rounds: int = 5
    timeout: float = 30.0
    yes: bool = False


@dataclass
class LoadOptions:
    model: str
    n_ctx: int | None = None
    n_gpu_layers: int | None = None
    n_threads: int | None = None
    verbose: bool = False
    quiet: bool = False


def build_prompt(prompt: str | None, stdin_text: str | None) -> str:
    """The user turn: PROMPT, then a blank line, then piped stdin (either may be alone)."""
    parts = [p for p in (prompt, stdin_text) if p is not None and p.strip()]
    if not parts:
        raise UsageError("nothing to ask: give a PROMPT argument or pipe text on stdin")
    return "\n\n".join(p.rstrip("\n") if i else p for i, p in enumerate(parts))


def load_engine(opts: LoadOptions, *, err: TextIO, vocab_only: bool = False) -> Engine:
    """Resolve and load the model, with a transient status line on a terminal."""
    path = resolve_model(opts.model, quiet=opts.quiet, err=err)
    show = err.isatty() and not opts.verbose
    if show:
        err.write(f"loading {path.name}…")
        err.flush()
    try:
        return Engine.load(path, n_ctx=opts.n_ctx, n_gpu_layers=opts.n_gpu_layers,
                           n_threads=opts.n_threads, verbose=opts.verbose, vocab_only=vocab_only)
    finally:
        if show:
            err.write("\r\x1b[K")
            err.flush()


def format_stats(result: GenerationResult, engine: Engine) -> str:
    return (
        f"prompt {result.prompt_tokens} tokens ({result.prompt_evaluated} evaluated, "
        f"{result.prompt_reused} reused) in {result.prompt_seconds:.2f} s "
        f"[{result.prompt_tokens_per_second:.1f} tok/s] · reply {result.completion_tokens} "
        f"tokens in {result.generation_seconds:.2f} s [{result.tokens_per_second:.1f} tok/s] · "
        f"stop: {result.finish_reason} · context {result.prompt_tokens + result.completion_tokens}"
        f"/{engine.n_ctx} · threads {engine.info.n_threads} · gpu layers {engine.info.n_gpu_layers}"
    )


def run_ask(
    prompt: str | None,
    *,
    stdin_text: str | None,
    system: str | None,
    load: LoadOptions,
    params: SamplingParams,
    stats: bool = False,
    show_prompt: bool = False,
    show_tokens: bool = False,
    json_mode: JsonMode | None = None,
    tools: ToolOptions | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run one question; return the exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    user_text = build_prompt(prompt, stdin_text)
    grammar_text = None
    if json_mode is not None:
        system = json_mode.system_prompt(system)
        grammar_text = json_mode.grammar_text()  # a schema it cannot convert fails before loading
    if tools is not None and json_mode is not None:
        raise UsageError("--json/--schema and --tools do not go together")
    if tools is not None and tools.choice != "none":
        from hermes_cli.tools import system_prompt

        system = system_prompt(list(tools.tools.values()), system)
    messages = [Message("system", system)] if system else []
    messages.append(Message("user", user_text))

    engine = load_engine(load, err=err, vocab_only=show_prompt)
    chat = ChatML(engine)
    ids = chat.render(messages)
    if show_prompt:
        out.write(engine.detokenize(ids, special=True))
        if show_tokens:
            out.write("\n" + " ".join(map(str, ids)))
        out.write("\n")
        return 0

    if tools is not None:
        return _ask_tools(engine, chat, messages, tools, params, stats=stats,
                          verbose=load.verbose, out=out, err=err)
    if json_mode is not None:
        return _ask_json(engine, chat, messages, json_mode, grammar_text, params,
                         stats=stats, out=out, err=err)

    gen = engine.generate(ids, params)
    ended_with_newline = True
    try:
        for text in gen:
            out.write(text)
            out.flush()
            ended_with_newline = text.endswith("\n")
    finally:
        # Ctrl-C included: what was printed stays printed, and ends with a newline.
        if not ended_with_newline:
            out.write("\n")
            out.flush()
        if stats and gen.result is not None:
            err.write(format_stats(gen.result, engine) + "\n")
    result = gen.result
    assert result is not None
    if result.finish_reason == "context":
        err.write(f"warning: the reply filled the context ({engine.n_ctx} tokens) and was cut\n")
    return 0


def _ask_json(engine: Engine, chat: ChatML, messages: list[Message], mode: JsonMode,
              grammar_text: str | None, params: SamplingParams, *, stats: bool,
              out: TextIO, err: TextIO) -> int:
    from hermes_cli import jsonmode

    grammar = engine.grammar(grammar_text) if grammar_text else None
    answer = jsonmode.answer(engine, chat, messages, mode, params, grammar=grammar)
    if stats:
        for i, result in enumerate(answer.results, 1):
            err.write(f"attempt {i}: {format_stats(result, engine)}\n")
    write_json(answer.value, out)
    return 0


def write_json(value: Any, out: TextIO) -> None:
    """One line when piped (for `| jq`), indented and highlighted on a terminal."""
    if not out.isatty():
        out.write(json.dumps(value, ensure_ascii=False) + "\n")
        out.flush()
        return
    from hermes_cli.config import no_color

    if no_color():
        out.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")
        return
    from rich.console import Console
    from rich.json import JSON

    Console(file=out).print(JSON.from_data(value, ensure_ascii=False))


def _ask_tools(engine: Engine, chat: ChatML, messages: list[Message], opts: ToolOptions,
               params: SamplingParams, *, stats: bool, verbose: bool, out: TextIO,
               err: TextIO) -> int:
    from hermes_cli.toolloop import ToolEvent, ToolsRefused, run_tool_loop, short
    from hermes_cli.tools import ToolCall

    def approve(call: ToolCall) -> bool:
        if opts.yes:
            return True
        described = f"{call.name}({json.dumps(call.arguments, ensure_ascii=False)})"
        if not (sys.stdin is not None and sys.stdin.isatty() and err.isatty()):
            raise ToolsRefused(f"the model asked to run {described}, and nobody can approve it "
                               "here", hint="pass --yes to let tools run without asking")
        err.write(f"run {described}? [y/N] ")
        err.flush()
        return sys.stdin.readline().strip().lower() in ("y", "yes")

    def report(event: ToolEvent) -> None:
        if verbose:
            arrow = {"call": "→", "result": "←", "error": "✗", "declined": "✗"}[event.kind]
            err.write(f"{arrow} {event.name} {short(event.detail)}\n")

    loop = run_tool_loop(engine, chat, messages, opts.tools, params, tool_choice=opts.choice,
                         max_rounds=opts.max_rounds, timeout=opts.timeout, approve=approve,
                         report=report)
    if stats:
        for i, result in enumerate(loop.results, 1):
            err.write(f"round {i}: {format_stats(result, engine)}\n")
    if loop.stopped == "schema_only":  # the caller runs these: hand them over as JSON lines
        for call in loop.pending:
            out.write(json.dumps({"name": call.name, "arguments": call.arguments},
                                 ensure_ascii=False) + "\n")
        return 0
    out.write(loop.text if loop.text.endswith("\n") else loop.text + "\n")
    out.flush()
    if loop.stopped == "round_limit":
        err.write(f"warning: stopped after {loop.rounds} tool rounds (--max-rounds); the model "
                  "still wanted to call tools\n")
    return 0
