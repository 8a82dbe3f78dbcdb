"""The `hermes` command: wiring only. Each command checks its options, calls one core
function and returns its exit status; `main` is the one place errors become messages.

Imports here stay light (typer only): `hermes --help` must not load llama_cpp, rich's
markdown, prompt_toolkit or huggingface_hub.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer

from hermes_cli import __version__, config
from hermes_cli.errors import INTERRUPTED_EXIT_CODE, HermesError, OutputClosed

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="hermes",
    help="Chat with Hermes 2 Θ and any ChatML GGUF model, on llama.cpp.",
    pretty_exceptions_enable=False,
    add_completion=False,
    invoke_without_command=True,
    # Plain click help: rich help formatting imports rich.markdown and costs start-up time.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Options shared by ask, chat and batch: spelled once so the commands agree.
ModelOpt = Annotated[Optional[str], typer.Option(
    "--model", "-m", help="PATH.gguf, owner/repo or owner/repo:QUANT. "
    "Default: $HERMES_MODEL or " + config.DEFAULT_MODEL_REF, show_default=False)]
SystemOpt = Annotated[Optional[str], typer.Option("--system", "-s", help="System prompt.")]
TemperatureOpt = Annotated[float, typer.Option(help="Sampling temperature (0 = greedy).", min=0.0)]
TopPOpt = Annotated[float, typer.Option(help="Nucleus sampling.", min=0.0, max=1.0)]
TopKOpt = Annotated[int, typer.Option(help="Top-k sampling (0 = off).", min=0)]
MinPOpt = Annotated[float, typer.Option(help="Min-p sampling.", min=0.0, max=1.0)]
RepeatPenaltyOpt = Annotated[float, typer.Option(help="Repetition penalty (1 = off).", min=0.0)]
MaxTokensOpt = Annotated[Optional[int], typer.Option(
    help="Stop after this many tokens. Default: until the model ends or the context is full.",
    min=1, show_default=False)]
SeedOpt = Annotated[Optional[int], typer.Option(help="Seed, for reproducible output.", show_default=False)]
CtxOpt = Annotated[Optional[int], typer.Option(
    "--ctx", help="Context size in tokens. Default: the model's trained length (capped at "
    "16384); 0 = the full trained length.", min=0, show_default=False)]
GpuLayersOpt = Annotated[Optional[int], typer.Option(
    help="Layers to offload to the GPU. Default: all, when llama.cpp has a GPU; -1 = all.",
    show_default=False)]
ThreadsOpt = Annotated[Optional[int], typer.Option(
    help="CPU threads. Default: the CPUs this process may use (affinity, cgroup quota).",
    min=1, show_default=False)]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Show llama.cpp's own log on stderr.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No download messages or progress bar.")]


def _sampling(temperature: float, top_p: float, top_k: int, min_p: float,
              repeat_penalty: float, max_tokens: int | None, seed: int | None) -> Any:
    from hermes_cli.engine import SamplingParams

    return SamplingParams(temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p,
                          repeat_penalty=repeat_penalty, max_tokens=max_tokens, seed=seed)


def _version_callback(value: bool) -> None:
    if value:
        print(f"hermes-cli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option(
        "--version", callback=_version_callback, is_eager=True, help="Show the version and exit.")] = False,
) -> None:
    """Chat with Hermes 2 Θ and any ChatML GGUF model, on llama.cpp.

    Plain `hermes` on a terminal opens the chat; `hermes COMMAND --help` for each command.
    """
    if ctx.invoked_subcommand is None:
        if sys.stdin is not None and sys.stdin.isatty() and sys.stdout.isatty():
            ctx.invoke(chat)
        else:
            print(ctx.get_help())
        raise typer.Exit()


def _read_stdin() -> str | None:
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


def _guard(fn: F) -> F:
    """Turn a closed stdout into OutputClosed before typer maps it to a plain exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BrokenPipeError:
            raise OutputClosed("stdout was closed") from None

    return wrapper  # type: ignore[return-value]


@app.command()
@_guard
def ask(
    prompt: Annotated[Optional[str], typer.Argument(
        help="The question. Piped stdin is appended after a blank line.", show_default=False)] = None,
    model: ModelOpt = None,
    system: SystemOpt = None,
    temperature: TemperatureOpt = 0.8,
    top_p: TopPOpt = 0.95,
    top_k: TopKOpt = 40,
    min_p: MinPOpt = 0.05,
    repeat_penalty: RepeatPenaltyOpt = 1.1,
    max_tokens: MaxTokensOpt = None,
    seed: SeedOpt = None,
    ctx: CtxOpt = None,
    gpu_layers: GpuLayersOpt = None,
    threads: ThreadsOpt = None,
    stats: Annotated[bool, typer.Option("--stats", help="Print timings and tokens/s on stderr.")] = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    show_prompt: Annotated[bool, typer.Option(
        "--show-prompt", help="Print the exact ChatML the model would see, and exit.")] = False,
    tokens: Annotated[bool, typer.Option(
        "--tokens", help="With --show-prompt: also print the token ids.")] = False,
    json_: Annotated[bool, typer.Option(
        "--json", help="Answer with one JSON object (grammar-enforced).")] = False,
    schema: Annotated[Optional[str], typer.Option(
        "--schema", help="Answer with JSON matching this schema: a FILE, inline JSON, or "
        "module:Model (a pydantic model). Enforced while sampling: structure, types, enum, "
        "const, required, anyOf/oneOf/allOf, local $ref, array min/maxItems, string "
        "min/maxLength and pattern, formats date/time/date-time/uuid. Only checked after "
        "(with up to 2 retries): minimum/maximum, multipleOf, other formats, not, "
        "if/then/else, uniqueItems.", show_default=False)] = None,
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
    from hermes_cli.ask import LoadOptions, run_ask

    if tokens and not show_prompt:
        raise typer.BadParameter("--tokens goes with --show-prompt", param_hint="--tokens")
    json_mode = None
    if schema is not None or json_:
        from hermes_cli.jsonmode import JsonMode, load_schema

        json_mode = load_schema(schema) if schema is not None else JsonMode()
    tool_opts = None
    if tools or tools_json:
        from hermes_cli.ask import ToolOptions
        from hermes_cli.tools import load_all

        tool_opts = ToolOptions(load_all(tools, tools_json), choice=tool_choice,
                                max_rounds=max_rounds, timeout=tool_timeout, yes=yes)
    elif tool_choice != "auto":
        raise typer.BadParameter("--tool-choice needs --tools", param_hint="--tool-choice")
    params = _sampling(temperature, top_p, top_k, min_p, repeat_penalty, max_tokens, seed)
    load = LoadOptions(model=model or config.default_model_ref(), n_ctx=ctx,
                       n_gpu_layers=gpu_layers, n_threads=threads, verbose=verbose, quiet=quiet)
    code = run_ask(prompt, stdin_text=_read_stdin(), system=system, load=load, params=params,
                   stats=stats, show_prompt=show_prompt, show_tokens=tokens, json_mode=json_mode,
                   tools=tool_opts)
    raise typer.Exit(code)


@app.command()
@_guard
def download(
    model: Annotated[Optional[str], typer.Argument(
        help="owner/repo, owner/repo:QUANT or owner/repo/file.gguf. Default: $HERMES_MODEL "
        "or " + config.DEFAULT_MODEL_REF, show_default=False)] = None,
    quiet: QuietOpt = False,
) -> None:
    """Download a model (and verify it) without chatting; print its local path."""
    from hermes_cli import hub

    ref = hub.parse_ref(model or config.default_model_ref())
    if not isinstance(ref, hub.HubRef):
        raise typer.BadParameter(f"{model} is a local path, not a Hub reference")
    paths = hub.download(ref, quiet=quiet)
    print(paths[0])


@app.command()
@_guard
def models(
    repo: Annotated[Optional[str], typer.Argument(
        help="A Hub repository: list its quants (name, size, cached or not).",
        show_default=False)] = None,
    rm: Annotated[Optional[str], typer.Option(
        "--rm", help="Delete a cached model (owner/repo:QUANT or owner/repo/file.gguf).",
        show_default=False)] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before deleting.")] = False,
) -> None:
    """List a repository's quants and the GGUF models already cached."""
    from hermes_cli import hub

    if rm is not None:
        ref = hub.parse_ref(rm)
        if not isinstance(ref, hub.HubRef):
            raise typer.BadParameter(f"{rm} is a local path; delete it yourself", param_hint="--rm")
        cached = hub.find_cached(ref)
        if not cached:
            raise HermesError(f"{ref} is not cached")
        size = sum(p.stat().st_size for p in cached)
        if not yes:
            if not sys.stdin or not sys.stdin.isatty():
                raise HermesError(f"not deleting {ref} without confirmation", hint="add --yes")
            if not typer.confirm(f"Delete {ref} ({hub.human_size(size)})?"):
                raise typer.Exit(1)
        hub.remove_cached(ref)
        print(f"deleted {ref} ({hub.human_size(size)})")
        return
    cached = hub.cached_models()
    if repo is not None:
        ref = hub.parse_ref(repo)
        if not isinstance(ref, hub.HubRef):
            raise typer.BadParameter(f"{repo} is not a Hub repository")
        _, files = hub.list_remote(ref.repo_id)
        have = {c["quant"] for c in cached if c["repo"] == ref.repo_id}
        print(f"{ref.repo_id}:")
        for quant, size in sorted(hub.available_quants(files).items()):
            print(f"  {quant:<10} {hub.human_size(size):>10}  {'cached' if quant in have else ''}".rstrip())
        return
    if not cached:
        print(f"no GGUF models cached in {hub.cache_dir()}")
        return
    for c in cached:
        print(f"{c['repo']}:{c['quant'] or '?':<10} {hub.human_size(c['size']):>10}  {c['file']}")


@app.command()
@_guard
def info(model: ModelOpt = None) -> None:
    """The llama.cpp build (backends, GPU offload), this machine, and the model's metadata."""
    from hermes_cli import hub
    from hermes_cli import info as info_mod

    for line in info_mod.build_lines():
        print(line)
    print()
    ref = model or config.default_model_ref()
    if model is None:  # never start a multi-GB download just to describe the default
        parsed = hub.parse_ref(ref)
        cached = hub.find_cached(parsed) if isinstance(parsed, hub.HubRef) else [parsed]
        if not cached or not cached[0].exists():
            print(f"model: {ref} (not downloaded yet: `hermes download`)")
            return
    for line in info_mod.model_lines(hub.resolve_model(ref)):
        print(line)


@app.command()
@_guard
def chat(
    model: ModelOpt = None,
    system: SystemOpt = None,
    temperature: TemperatureOpt = 0.8,
    top_p: TopPOpt = 0.95,
    top_k: TopKOpt = 40,
    min_p: MinPOpt = 0.05,
    repeat_penalty: RepeatPenaltyOpt = 1.1,
    max_tokens: MaxTokensOpt = None,
    seed: SeedOpt = None,
    ctx: CtxOpt = None,
    gpu_layers: GpuLayersOpt = None,
    threads: ThreadsOpt = None,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    plain: Annotated[bool, typer.Option("--plain", help="Plain text, no Markdown or colour "
                                        "(also when NO_COLOR is set).")] = False,
    continue_: Annotated[bool, typer.Option("--continue", "-c",
                                            help="Resume the most recent conversation.")] = False,
    resume: Annotated[Optional[str], typer.Option(
        help="Resume the conversation with this id (see `hermes history`).",
        show_default=False)] = None,
) -> None:
    """Chat in the terminal: streaming Markdown, slash-commands (/help), saved sessions."""
    from rich.console import Console

    from hermes_cli.ask import LoadOptions, load_engine
    from hermes_cli.conversation import Conversation
    from hermes_cli.repl import Repl, make_session
    from hermes_cli import sessions

    if continue_ and resume:
        raise typer.BadParameter("--continue and --resume exclude each other")
    if continue_ or resume:
        conversation = sessions.load(resume)
        if system is not None:
            conversation.system = system
        model = model or conversation.model or None
    else:
        conversation = Conversation(system=system, params=_sampling(
            temperature, top_p, top_k, min_p, repeat_penalty, max_tokens, seed))
    ref = model or config.default_model_ref()
    conversation.model = ref
    plain = plain or config.no_color()
    console = Console(no_color=plain, highlight=False)
    engine = load_engine(LoadOptions(model=ref, n_ctx=ctx, n_gpu_layers=gpu_layers,
                                     n_threads=threads, verbose=verbose, quiet=quiet),
                         err=sys.stderr)
    session = make_session(config.data_dir() / "history")
    raise typer.Exit(Repl(engine, conversation, console=console, session=session,
                          plain=plain).run())


@app.command()
@_guard
def batch(
    input_: Annotated[str, typer.Argument(
        metavar="INPUT", help="A text file (one prompt per line), a JSONL file ({\"id\", "
        "\"prompt\"|\"messages\", \"system\", \"schema\", sampling overrides}), or - for stdin.")],
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Results JSONL, appended and resumable. Default: stdout.",
        show_default=False)] = None,
    model: ModelOpt = None,
    system: SystemOpt = None,
    temperature: TemperatureOpt = 0.8,
    top_p: TopPOpt = 0.95,
    top_k: TopKOpt = 40,
    min_p: MinPOpt = 0.05,
    repeat_penalty: RepeatPenaltyOpt = 1.1,
    max_tokens: MaxTokensOpt = None,
    seed: Annotated[Optional[int], typer.Option(
        help="Base seed: line i uses SEED+i, so a run (and a resumed run) is reproducible.",
        show_default=False)] = None,
    ctx: CtxOpt = None,
    gpu_layers: GpuLayersOpt = None,
    threads: ThreadsOpt = None,
    verbose: VerboseOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Every answer is one JSON object.")] = False,
    schema: Annotated[Optional[str], typer.Option(
        "--schema", help="Every answer matches this schema (FILE, inline JSON or module:Model).",
        show_default=False)] = None,
    tools: Annotated[Optional[list[str]], typer.Option(
        "--tools", help="Python tools file (repeatable); needs --yes.", show_default=False)] = None,
    tool_choice: Annotated[str, typer.Option(help="auto, none, required or a tool's name.")] = "auto",
    max_rounds: Annotated[int, typer.Option(help="Most tool rounds per line.", min=0)] = 5,
    tool_timeout: Annotated[float, typer.Option(help="Seconds a tool may run.", min=0.1)] = 30.0,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Let tools run (a batch cannot ask).")] = False,
    parallel: Annotated[int, typer.Option(
        help="Decode N prompts together (continuous batching; text answers). Each prompt "
        "gets 1/N of the context.", min=1)] = 1,
) -> None:
    """Answer many prompts with one loaded model; one JSON result per line, resumable.

    Exit codes: 0 every line answered, 1 some lines failed (see their "error"), 2 bad
    usage or input, 3 model unloadable, 130 interrupted (results so far are kept).
    """
    from hermes_cli import batch as batch_mod
    from hermes_cli.ask import LoadOptions, ToolOptions, load_engine

    for stream in batch_mod.open_input(input_):
        try:
            items = batch_mod.read_items(stream)
        except UnicodeDecodeError:
            raise batch_mod.UsageError(f"{input_} is not UTF-8 text") from None
    opts = batch_mod.BatchOptions(system=system, parallel=parallel, params=_sampling(
        temperature, top_p, top_k, min_p, repeat_penalty, max_tokens, seed))
    if schema is not None or json_:
        from hermes_cli.jsonmode import JsonMode, load_schema

        opts.json_mode = load_schema(schema) if schema is not None else JsonMode()
        opts.json_mode.grammar_text()
    if tools:
        if not yes:
            raise batch_mod.UsageError("a batch cannot ask before running tools",
                                       hint="pass --yes to let them run")
        from hermes_cli.tools import load_all

        opts.tools = ToolOptions(load_all(tools), choice=tool_choice, max_rounds=max_rounds,
                                 timeout=tool_timeout, yes=True)
    done = batch_mod.repair_and_read_done(output) if output else set()
    engine = load_engine(LoadOptions(model=model or config.default_model_ref(), n_ctx=ctx,
                                     n_gpu_layers=gpu_layers, n_threads=threads, verbose=verbose,
                                     quiet=quiet), err=sys.stderr)
    writer = batch_mod.ResultWriter(output, sys.stdout)
    progress, stop = (None, lambda: None)
    if not quiet and sys.stderr.isatty():
        progress, stop = batch_mod.iter_progress_bar(len(items), sys.stderr)
    try:
        summary = batch_mod.run_batch(engine, items, writer, done, opts, progress=progress)
    finally:
        stop()
        writer.close()
    if not quiet:
        print(summary.line(), file=sys.stderr)
    if summary.failed:
        raise typer.Exit(batch_mod.SomeLinesFailed.exit_code)


@app.command()
def history() -> None:
    """List saved conversations (resume one with `hermes chat --resume ID`)."""
    from hermes_cli import sessions

    found = sessions.list_sessions()
    if not found:
        print("no saved conversations")
        return
    for s in found:
        print(f"{s.id}  {s.messages:>4} messages  {s.first_line}")


def _fail(message: str, code: int, hint: str | None = None) -> int:
    print(f"Error: {message}", file=sys.stderr)
    if hint:
        print(f"Hint: {hint}", file=sys.stderr)
    return code


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status, never raising (except with HERMES_DEBUG)."""
    # typer >= 0.24 vendors click (typer._click): find its base class, not click's.
    click_error = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    try:
        result = app(args=argv, prog_name="hermes", standalone_mode=False)
        code = result if isinstance(result, int) else 0
        if code == INTERRUPTED_EXIT_CODE:  # typer turns Ctrl-C into Exit(130)
            print("\nInterrupted.", file=sys.stderr)
        return code
    except OutputClosed:
        # The reader went away (`| head`): quietly stop, as a SIGPIPE death would.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return OutputClosed.exit_code
    except HermesError as e:
        if config.debug():
            raise
        return _fail(str(e), e.exit_code, e.hint)
    except typer.Abort as e:  # click turns Ctrl-C (and EOF) into Abort
        if isinstance(e.__context__, EOFError):
            return 1
        print("Interrupted.", file=sys.stderr)
        return INTERRUPTED_EXIT_CODE
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return INTERRUPTED_EXIT_CODE
    except click_error as e:
        e.show()  # type: ignore[attr-defined]
        return int(e.exit_code)  # type: ignore[attr-defined]
    except Exception as e:  # a bug: one line, and a way to see the traceback
        if config.debug():
            raise
        return _fail(f"{type(e).__name__}: {e}", 1, "set HERMES_DEBUG=1 to see the traceback")


def main() -> None:
    sys.exit(run())
