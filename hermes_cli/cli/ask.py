"""`hermes ask`: one prompt in, the streamed answer on stdout, nothing else there.

Everything that is not the answer (load status, stats, warnings, llama.cpp's log with
--verbose) goes to stderr, so `hermes ask ... > out.txt` and `| jq` see only the answer.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any, Optional, TextIO

import typer

from hermes_cli import env
from hermes_cli.cli.main import guard_stdout
from hermes_cli.cli.options import (
    LOADING,
    SAMPLING,
    LoadFlags,
    load_options,
    sampling_params,
    with_options,
)
from hermes_cli.errors import UsageError

if TYPE_CHECKING:
    from hermes_cli.core.loading import LoadOptions
    from hermes_cli.engine.model import Engine
    from hermes_cli.engine.params import SamplingParams
    from hermes_cli.modes.json_mode import JsonMode
    from hermes_cli.modes.tools.loop import ToolOptions
    from hermes_cli.prompt.chatml import ChatML
    from hermes_cli.prompt.messages import Message

SCHEMA_HELP = (
    "Answer with JSON matching this schema: a FILE, inline JSON, or module:Model (a pydantic "
    "model). Enforced while sampling: structure, types, enum, const, required, "
    "anyOf/oneOf/allOf, local $ref, array min/maxItems, string min/maxLength and pattern, "
    "formats date/time/date-time/uuid. Only checked after (with up to 2 retries): "
    "minimum/maximum, multipleOf, other formats, not, if/then/else, uniqueItems."
)


@guard_stdout
@with_options(SAMPLING, LOADING)
def ask(
    prompt: Annotated[Optional[str], typer.Argument(
        help="The question. Piped stdin is appended after a blank line.", show_default=False)] = None,
    *,
    system: Annotated[Optional[str], typer.Option("--system", "-s", help="System prompt.")] = None,
    sampling: dict[str, Any],
    load: LoadFlags,
    stats: Annotated[bool, typer.Option("--stats", help="Print timings and tokens/s on stderr.")] = False,
    show_prompt: Annotated[bool, typer.Option(
        "--show-prompt", help="Print the exact ChatML the model would see, and exit.")] = False,
    tokens: Annotated[bool, typer.Option(
        "--tokens", help="With --show-prompt: also print the token ids.")] = False,
    json_: Annotated[bool, typer.Option(
        "--json", help="Answer with one JSON object (grammar-enforced).")] = False,
    schema: Annotated[Optional[str], typer.Option("--schema", help=SCHEMA_HELP, show_default=False)] = None,
    tools: Annotated[Optional[list[str]], typer.Option(
        "--tools", help="A Python file whose public functions the model may call "
        "(repeatable).", show_default=False)] = None,
    tools_json: Annotated[Optional[str], typer.Option(
        "--tools-json", help="OpenAI-format tool definitions (schemas only: the calls are "
        "printed as JSON lines for you to run).", show_default=False)] = None,
    tool_choice: Annotated[str, typer.Option(
        help="auto, none, required (force a call) or a tool's name (force that tool).")] = "auto",
    max_rounds: Annotated[int, typer.Option(help="Most tool rounds before stopping.", min=0)] = 5,
    tool_timeout: Annotated[float, typer.Option(help="Seconds a tool may run.", min=0.1)] = 30.0,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Run tool calls without asking.")] = False,
) -> None:
    """Ask one question; the answer streams to stdout.

    `cat notes.txt | hermes ask "Summarize this"` sends "Summarize this", a blank line,
    then the file. Exit codes: 0 done, 2 bad usage, 3 model unloadable, 4 prompt larger
    than the context, 5 download failed, 6 JSON reply invalid or cut, 130 interrupted.
    """
    if tokens and not show_prompt:
        raise typer.BadParameter("--tokens goes with --show-prompt", param_hint="--tokens")
    json_mode = None
    if schema is not None or json_:
        from hermes_cli.modes.json_mode import JsonMode, load_schema

        json_mode = load_schema(schema) if schema is not None else JsonMode()
    tool_opts = None
    if tools or tools_json:
        from hermes_cli.modes.tools.loading import load_all
        from hermes_cli.modes.tools.loop import ToolOptions

        tool_opts = ToolOptions(load_all(tools, tools_json), choice=tool_choice,
                                max_rounds=max_rounds, timeout=tool_timeout, yes=yes)
    elif tool_choice != "auto":
        raise typer.BadParameter("--tool-choice needs --tools", param_hint="--tool-choice")
    code = run_ask(prompt, stdin_text=read_stdin(), system=system, load=load_options(load),
                   params=sampling_params(sampling), stats=stats, show_prompt=show_prompt,
                   show_tokens=tokens, json_mode=json_mode, tools=tool_opts)
    raise typer.Exit(code)


def read_stdin() -> str | None:
    """Piped stdin as text, or None when stdin is a terminal or absent."""
    stream = sys.stdin
    if stream is None or stream.closed:
        return None
    try:
        if stream.isatty():
            return None
        return stream.read()
    except (OSError, ValueError):
        return None


def build_prompt(prompt: str | None, stdin_text: str | None) -> str:
    """The user turn: PROMPT, then a blank line, then piped stdin (either may be alone)."""
    parts = [p for p in (prompt, stdin_text) if p is not None and p.strip()]
    if not parts:
        raise UsageError("nothing to ask: give a PROMPT argument or pipe text on stdin")
    return "\n\n".join(p.rstrip("\n") if i else p for i, p in enumerate(parts))


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
    from hermes_cli.core.loading import load_engine
    from hermes_cli.core.stats import format_stats
    from hermes_cli.prompt.chatml import ChatML
    from hermes_cli.prompt.messages import Message

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
        from hermes_cli.modes.tools.protocol import system_prompt

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
    from hermes_cli.core.stats import format_stats
    from hermes_cli.modes import json_mode

    grammar = engine.grammar(grammar_text) if grammar_text else None
    answer = json_mode.answer(engine, chat, messages, mode, params, grammar=grammar)
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
    if env.no_color():
        out.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")
        return
    from rich.console import Console
    from rich.json import JSON

    Console(file=out).print(JSON.from_data(value, ensure_ascii=False))


def _ask_tools(engine: Engine, chat: ChatML, messages: list[Message], opts: ToolOptions,
               params: SamplingParams, *, stats: bool, verbose: bool, out: TextIO,
               err: TextIO) -> int:
    from hermes_cli.core.stats import format_stats
    from hermes_cli.modes.tools.loop import ToolEvent, ToolsRefused, run_tool_loop, short
    from hermes_cli.modes.tools.protocol import ToolCall

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
