"""`hermes ask`: one prompt in, the streamed answer on stdout, nothing else there.

Everything that is not the answer (load status, stats, warnings, llama.cpp's log with
--verbose) goes to stderr, so `hermes ask ... > out.txt` and `| jq` see only the answer.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any, Optional, TextIO

import typer

from hermes_cli import env
from hermes_cli.cli.main import guard_stdout
from hermes_cli.cli.options import (
    CALL_FORMAT,
    LOADING,
    MCP,
    ROLE,
    SAMPLING,
    THINK,
    LoadFlags,
    MaxRounds,
    McpFlags,
    ToolChoice,
    ToolTimeout,
    load_options,
    mcp_tools,
    settings,
    with_options,
)
from hermes_cli.cli.question_inputs import command_asker, read_stdin
from hermes_cli.modes.tools.tool import DEFAULT_MAX_ROUNDS, DEFAULT_TIMEOUT

if TYPE_CHECKING:
    from hermes_cli.core.backends import Backend
    from hermes_cli.core.loading import LoadOptions
    from hermes_cli.core.one_shot import Question
    from hermes_cli.modes.tools.loop import ToolOptions

SCHEMA_HELP = (
    "Answer with JSON matching this schema: a FILE, inline JSON, or module:Model (a pydantic "
    "model). Enforced while sampling: structure, types, enum, const, required, "
    "anyOf/oneOf/allOf, local $ref, lengths, patterns, minimum/maximum, multipleOf, formats "
    "(date/time/date-time as real calendar dates, email, uri, uuid, ipv4/6, hostname, duration). "
    "Only checked after (with up to 2 retries): not, if/then/else, uniqueItems, dependencies."
)


@guard_stdout
@with_options(SAMPLING, LOADING, ROLE, MCP, CALL_FORMAT, THINK)
def ask(
    prompt: Annotated[Optional[str], typer.Argument(
        help="The question. Piped stdin is appended after a blank line.", show_default=False)] = None,
    *,
    system: Annotated[Optional[str], typer.Option("--system", "-s", help="System prompt.")] = None,
    sampling: dict[str, Any],
    load: LoadFlags,
    role: Optional[str],
    mcp: McpFlags,
    call_format: Optional[str],
    think: Optional[bool],
    files: Annotated[Optional[list[str]], typer.Option(
        "--file", "-f", help="Put this file's text into the question, fenced with its name "
        "(repeatable; globs too); an http(s) URL: the page's text; '!COMMAND': its output, run in "
        "your shell after a yes at the terminal (or --yes).", show_default=False)] = None,
    stats: Annotated[bool, typer.Option("--stats", help="Print timings and tokens/s on stderr.")] = False,
    choices: Annotated[Optional[str], typer.Option(
        "--choices", help="Decision mode: answer with exactly one of these comma-separated labels, "
        "scored from the model's logits (no sampling); prints the label, or with --json the label "
        "and every label's probability.", show_default=False)] = None,
    extract: Annotated[bool, typer.Option(
        "--extract", "-x", help="Print only the first fenced code block of the answer (its code, as it is "
        "written; the model stops once the block closes). No block: exit 6, nothing printed.")] = False,
    show_thinking: Annotated[bool, typer.Option(
        "--show-thinking", help="A reasoning model's <think> section on stderr as it streams (stdout holds "
        "the answer only, always).")] = False,
    show_prompt: Annotated[bool, typer.Option(
        "--show-prompt", help="Print the exact prompt the model would see (ChatML, or the GGUF's "
        "own template), and exit.")] = False,
    tokens: Annotated[bool, typer.Option(
        "--tokens", help="With --show-prompt: also print the token ids.")] = False,
    json_: Annotated[bool, typer.Option(
        "--json", help="Answer with one JSON object (grammar-enforced).")] = False,
    schema: Annotated[Optional[str], typer.Option("--schema", help=SCHEMA_HELP, show_default=False)] = None,
    tools: Annotated[Optional[list[str]], typer.Option(
        "--tools", help="A Python file whose public functions the model may call "
        "(repeatable).", show_default=False)] = None,
    tools_json: Annotated[Optional[str], typer.Option(
        "--tools-json", help="OpenAI-format tool definitions, a FILE or inline JSON (schemas "
        "only: the calls are printed as JSON lines for you to run).", show_default=False)] = None,
    tool_choice: ToolChoice = "auto",
    max_rounds: MaxRounds = DEFAULT_MAX_ROUNDS,
    tool_timeout: ToolTimeout = DEFAULT_TIMEOUT,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Run tool calls without asking.")] = False,
    prompt_cache: Annotated[Optional[bool], typer.Option(
        "--prompt-cache/--no-prompt-cache", help="Keep the system prompt's KV state on disk, and "
        "load it when the next ask starts the same (a schema's, tools', a long --system). "
        "Default: the config's prompt_cache, true.", show_default=False)] = None,
) -> None:
    """Ask one question; the answer streams to stdout.

    `cat notes.txt | hermes ask "Summarize this"` sends "Summarize this", a blank line,
    then the file; `-f notes.txt` sends it fenced with its name. Settings come from,
    strongest first: the command line > the environment > --role > the config file > the
    defaults.
    """
    if tokens and not show_prompt:
        raise typer.BadParameter("--tokens goes with --show-prompt", param_hint="--tokens")
    from hermes_cli.core.config import load_config

    config = load_config()
    chosen = settings(sampling, load, role=role, system=system, config=config)
    labels = chosen.choices(choices)  # --choices, else the role's
    if labels is not None:
        if schema or tools or tools_json or mcp.servers or extract or show_prompt:
            raise typer.BadParameter("decision mode answers with a label: not with --schema, --tools, "
                                     "--tools-json, --mcp, -x or --show-prompt", param_hint="--choices")
        from hermes_cli.core.one_shot import Question as Asked

        asked = Asked(prompt, stdin_text=read_stdin(), files=files or [])
        raise typer.Exit(run_choices(asked, labels, chosen, load, as_json=json_))
    json_mode = chosen.json_mode(schema, json_)
    if extract and json_mode is not None:
        raise typer.BadParameter("it prints a code block of a text answer; not with --json or --schema",
                                 param_hint="--extract")
    tools = chosen.tool_files(tools)
    if tokens and load.endpoints:
        raise typer.BadParameter("a served engine's token ids are not known here", param_hint="--tokens")
    from hermes_cli.modes.tools.loading import load_all
    from hermes_cli.modes.tools.loop import ToolOptions

    local = load_all(tools, tools_json) if tools or tools_json else {}
    with mcp_tools(mcp, config, local, sys.stderr) as remote:
        tool_opts = None
        if local or remote:
            tool_opts = ToolOptions({**local, **remote}, choice=tool_choice, max_rounds=max_rounds,
                                    timeout=tool_timeout, yes=yes, call_format=call_format or config.call_format)
        elif tool_choice != "auto":
            raise typer.BadParameter("--tool-choice needs --tools or --mcp", param_hint="--tool-choice")
        from hermes_cli.core.one_shot import Question

        question = Question(prompt, stdin_text=read_stdin(), system=chosen.system, params=chosen.params,
                            files=files or [], json_mode=json_mode, tools=tool_opts, run_command=command_asker(yes),
                            think=think)
        keep = config.prompt_cache if prompt_cache is None else prompt_cache
        loading = load_options(load, chosen, prompt_cache=keep, grammars=question.mode.name != "text")
        code = run_ask(question, loading, endpoints=load.endpoints,
                       api_key_env=load.api_key_env, served_model=load.model, stats=stats,
                       show_prompt=show_prompt, show_tokens=tokens, show_thinking=show_thinking,
                       extract=extract)
    raise typer.Exit(code)


def run_choices(question: Any, labels: list[str], chosen: Any, load: LoadFlags, *, as_json: bool) -> int:
    """Decision mode (core/decision.py): the label on stdout, or the label and every
    label's probability as one JSON object."""
    from hermes_cli.core.backends import open_backend
    from hermes_cli.core.decision import decide, decision_messages
    from hermes_cli.core.one_shot import prepare

    text = prepare(question).messages[-1].content  # the prompt, stdin and files, as `ask` sends them
    backend = open_backend(load_options(load, chosen), endpoints=load.endpoints, key_env=load.api_key_env,
                           served_model=load.model, err=sys.stderr)
    try:
        decision = decide(backend, decision_messages(chosen.system, text, labels), labels)
    finally:
        backend.close()
    if as_json:
        sys.stdout.write(json.dumps({"label": decision.label, "probabilities": decision.probabilities},
                                    ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(decision.label + "\n")
    return 0


def run_ask(question: Question, load: LoadOptions, *, endpoints: list[str] | None = None,
            api_key_env: str = "OPENAI_API_KEY", served_model: str | None = None, stats: bool = False,
            show_prompt: bool = False, show_tokens: bool = False, out: TextIO | None = None,
            err: TextIO | None = None, show_thinking: bool = False, extract: bool = False) -> int:
    """Ask one question (core/one_shot.py) and print the answer; return the exit status."""
    from hermes_cli.core.backends import open_backend
    from hermes_cli.core.one_shot import prepare

    out = out or sys.stdout
    err = err or sys.stderr
    prepared = prepare(question)  # a bad file or schema fails before any model loads
    backend = open_backend(load, endpoints=endpoints, key_env=api_key_env, served_model=served_model,
                           err=err, vocab_only=show_prompt)
    try:
        if question.think is not None:
            backend.think(question.think)
        prepared = prepared.bound(backend)  # tool calls in this model's format
        if show_prompt:
            text, ids = backend.show_prompt(prepared.messages, question.params)
            out.write(text)
            if show_tokens and ids is not None:
                out.write("\n" + " ".join(map(str, ids)))
            out.write("\n")
            return 0
        files = prepared.check_files(backend)
        if files and not load.quiet:
            err.write(files + "\n")
        printer = _Printer(out, err, backend, question.mode.name, stats=stats, verbose=load.verbose,
                           show_thinking=show_thinking, extract=extract,
                           schema_only=question.schema_only, quiet=load.quiet)
        printer.show(iter(prepared.answer(backend, _approver(question.tools, err))))
    finally:
        backend.close()
    return 0


def _approver(tools: ToolOptions | None, err: TextIO) -> Callable[[Any], bool]:
    from hermes_cli.errors import ToolsRefused

    def approve(call: Any) -> bool:
        """Asked on the terminal: stdin when it is one, else the controlling terminal;
        never read from piped input (chat/tty.py)."""
        from hermes_cli.chat.tty import ask_terminal

        if tools is not None and tools.yes:
            return True
        described = f"{call.name}({json.dumps(call.arguments, ensure_ascii=False)})"
        question = f"run {described}? [y/N] "
        if sys.stdin is not None and sys.stdin.isatty() and err.isatty():
            err.write(question)
            err.flush()
            answer: str | None = sys.stdin.readline()
        else:
            answer = ask_terminal(question)
        if answer is None:
            raise ToolsRefused(f"the model asked to run {described}, and nobody can approve it "
                               "here (approvals come only from a terminal)",
                               hint="pass --yes to let tools run without asking")
        return answer.strip().lower() in ("y", "yes")

    return approve


class _Printer:
    """The answer on stdout as it is written; everything else on stderr. JSON is printed
    once valid (never a partial or invalid object); schema-only tool calls as JSON lines."""

    def __init__(self, out: TextIO, err: TextIO, backend: Backend, mode: str, *, stats: bool,
                 verbose: bool, schema_only: bool, quiet: bool = False, show_thinking: bool = False,
                 extract: bool = False) -> None:
        self.out, self.err, self.backend = out, err, backend
        from hermes_cli.core.extract import CodeExtractor

        self.code = CodeExtractor() if extract else None  # -x: the first code block only
        self.show_thinking = show_thinking
        self._thought = False  # thinking was shown: its line on stderr ends before the answer
        self.mode, self.stats, self.verbose, self.schema_only = mode, stats, verbose, schema_only
        self.quiet = quiet
        self.ends_with_newline = True
        # On a terminal a model's escape sequences are shown, never run (chat does the
        # same); piped, the answer stays byte-exact.
        from hermes_cli.chat.visible import shown_on

        self._shown = shown_on(out)
        self._shown_err = shown_on(err)

    def show(self, events: Iterator[Any]) -> None:
        from hermes_cli.modes import events as ev

        try:
            for event in events:
                if isinstance(event, ev.ThinkingDelta):
                    if self.show_thinking:  # stderr: a pipe's stdout holds the answer only
                        self.err.write(self._shown_err(event.text))
                        self.err.flush()
                        self._thought = True
                    continue
                self._end_thinking()  # the thinking's line ends before an answer, call or note
                if isinstance(event, ev.TextDelta) and self.code is not None:
                    self.write(self.code.feed(event.text))
                    if self.code.done:  # the block is whole: the rest of the answer is not wanted
                        events.close()  # type: ignore[attr-defined]
                        return
                elif isinstance(event, ev.TextDelta) and not self.schema_only:
                    self.write(event.text)
                elif isinstance(event, (ev.ToolCallEvent, ev.ToolResultEvent, ev.Notice)):
                    self.note(event)
                elif isinstance(event, ev.Final):
                    self.finish(event.reply)
        finally:  # Ctrl-C included: what was printed stays printed, and ends with a newline
            if not self.ends_with_newline:
                self.write("\n")

    def _end_thinking(self) -> None:
        if self._thought:
            self.err.write("\n")
            self._thought = False

    def write(self, text: str) -> None:
        if text:
            self.out.write(self._shown(text))
            self.out.flush()
            self.ends_with_newline = text.endswith("\n")

    def note(self, event: Any) -> None:
        from hermes_cli.modes import events as ev
        from hermes_cli.modes.tools.loop import short

        if not (self.verbose or self.stats):
            return
        if isinstance(event, ev.ToolCallEvent):
            self.err.write(f"→ {event.name} {short(event.arguments)}\n")
        elif isinstance(event, ev.ToolResultEvent):
            mark = "←" if event.status == "ok" else f"✗ {event.status}" if event.status == "declined" else "✗"
            self.err.write(f"{mark} {event.name} {short(event.content)}\n")
        else:
            self.err.write(f"note: {event.text}\n")

    def finish(self, reply: Any) -> None:
        if self.code is not None:
            self.write(self.code.finish())
            if not self.code.found and reply.stopped != "interrupted":
                from hermes_cli.errors import OutputContractError

                raise OutputContractError("the answer has no fenced code block (-x prints only that)",
                                          hint="ask for the code in a ``` block, or drop -x")
        if not self.ends_with_newline:  # the answer's line ends before anything else is said
            self.write("\n")
        from hermes_cli.core import figures

        for result in reply.results:
            note = figures.closed_note(result)
            if note and not self.quiet:
                self.err.write(note + "\n")
        if self.stats:
            label = "attempt" if self.mode == "json" else "round"
            for i, result in enumerate(reply.results, 1):
                prefix = f"{label} {i}: " if len(reply.results) > 1 or self.mode != "text" else ""
                self.err.write(prefix + figures.stats_line(result, self.backend.facts()) + "\n")
        if reply.stopped == "interrupted":
            raise KeyboardInterrupt
        if self.mode == "json":
            write_json(reply.value, self.out)
        elif reply.stopped == "schema_only":  # the caller runs these: hand them over as JSON lines
            for call in reply.pending:
                self.write(json.dumps({"name": call.name, "arguments": call.arguments},
                                      ensure_ascii=False) + "\n")
        elif self.schema_only:
            self.write(reply.text)
        if reply.stopped == "round_limit":
            self.err.write(f"warning: stopped after {reply.rounds} tool rounds (--max-rounds); the "
                           "model still wanted to call tools\n")
        elif reply.last.finish_reason == "context":
            self.err.write(f"warning: the reply filled the context ({self.backend.n_ctx} tokens) "
                           "and was cut\n")
        elif reply.last.finish_reason == "length" and self.mode == "text" and not self.quiet:
            # whoever generated it: a served engine that ignores max_tokens is cut by us
            self.err.write(f"note: the answer was cut at --max-tokens ({reply.last.completion_tokens})\n")


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
