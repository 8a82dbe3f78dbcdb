"""`hermes batch`: many prompts through one loaded model, one JSON record per line."""

from __future__ import annotations

import contextlib
import io
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Optional, TextIO

import typer

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
from hermes_cli.errors import UsageError
from hermes_cli.modes.tools.tool import DEFAULT_MAX_ROUNDS, DEFAULT_TIMEOUT

# llama.cpp holds at most 256 sequences in a context; one holds the shared prefix.
MAX_PARALLEL = 255
# Below this share of the context per prompt, a system prompt and a reply do not fit.
MIN_SLOT_TOKENS = 64


@guard_stdout
@with_options(SAMPLING.with_help(seed="Base seed: line i uses SEED+i, so a run (and a resumed "
                                      "run) is reproducible."),
              LOADING.with_help(quiet="No progress bar or summary."), ROLE, MCP, CALL_FORMAT, THINK)
def batch(
    input_: Annotated[str, typer.Argument(
        metavar="INPUT", help="A text file (one prompt per line), a JSONL file ({\"id\", "
        "\"prompt\"|\"messages\", \"system\", \"schema\", sampling overrides}), or - for stdin.")],
    *,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Results JSONL, appended and resumable. Default (or -): stdout.",
        show_default=False)] = None,
    system: Annotated[Optional[str], typer.Option("--system", "-s", help="System prompt.")] = None,
    sampling: dict[str, Any],
    load: LoadFlags,
    role: Optional[str],
    mcp: McpFlags,
    call_format: Optional[str],
    think: Optional[bool],
    json_: Annotated[bool, typer.Option("--json", help="Every answer is one JSON object.")] = False,
    schema: Annotated[Optional[str], typer.Option(
        "--schema", help="Every answer matches this schema (FILE, inline JSON or module:Model).",
        show_default=False)] = None,
    tools: Annotated[Optional[list[str]], typer.Option(
        "--tools", help="Python tools file (repeatable); needs --yes.", show_default=False)] = None,
    tool_choice: ToolChoice = "auto",
    max_rounds: MaxRounds = DEFAULT_MAX_ROUNDS,
    tool_timeout: ToolTimeout = DEFAULT_TIMEOUT,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Let tools run (a batch cannot ask).")] = False,
    parallel: Annotated[int, typer.Option(
        help="Decode N prompts together (continuous batching), in every mode. Each prompt "
        "gets 1/N of the context.", min=1)] = 1,
    concurrency: Annotated[int, typer.Option(
        help="With --endpoint: requests in flight at once.", min=1, max=256)] = 4,
    request_timeout: Annotated[float, typer.Option(
        help="With --endpoint: seconds one request may take.", min=1.0)] = 600.0,
    choices: Annotated[Optional[str], typer.Option(
        "--choices", help="Decision mode for every line: one of these comma-separated labels and each "
        "label's probability, from the model's logits (a line's \"choices\" list sets its own).",
        show_default=False)] = None,
    format_: Annotated[str, typer.Option(
        "--format", help="The output: hermes (one record per line: output, tokens, timing) or openai "
        "(OpenAI Batch output lines: custom_id, response.body a chat.completion). OpenAI Batch input "
        "lines (custom_id, body) are read either way.")] = "hermes",
    allow_files_outside: Annotated[bool, typer.Option(
        "--allow-files-outside", help="Let lines' \"files\" name paths outside the working directory "
        "(by default they may not: a JSONL file is often data from elsewhere).")] = False,
) -> None:
    """Answer many prompts with one loaded model; one JSON result per line, resumable.

    A line that fails gets an error record (exit 1 at the end); Ctrl-C keeps the results
    so far, and the same command resumes.
    """
    from hermes_cli.core import batch as batch_mod
    from hermes_cli.core import locks
    from hermes_cli.modes.tools.loop import ToolOptions

    if format_ not in ("hermes", "openai"):
        raise typer.BadParameter(f"{format_!r}: use hermes or openai", param_hint="--format")
    if parallel > MAX_PARALLEL:
        raise UsageError(f"--parallel {parallel}: llama.cpp decodes at most {MAX_PARALLEL} "
                         "sequences together")
    for stream in open_input(input_):
        try:
            items = batch_mod.read_items(stream, files_root=None if allow_files_outside else Path.cwd())
        except UnicodeDecodeError:
            raise UsageError(f"{input_} is not UTF-8 text") from None
    from hermes_cli.core.config import load_config

    config = load_config()
    chosen = settings(sampling, load, role=role, system=system, config=config)
    opts = batch_mod.BatchOptions(system=chosen.system, parallel=parallel, params=chosen.params)
    opts.choices = chosen.choices(choices)  # --choices, else the role's
    opts.json_mode = chosen.json_mode(schema, json_)
    opts.call_format = call_format or config.call_format  # "auto": decided once the model is known
    opts.thinking = think
    if format_ == "openai":
        from functools import partial

        from hermes_cli.core.batch_openai import output_line

        opts.shape = partial(output_line, model=load.model or chosen.model)
    if opts.json_mode is not None:
        opts.json_mode.check()
    tools = chosen.tool_files(tools)
    from hermes_cli.modes.tools.loading import load_all

    local = load_all(tools) if tools else {}
    with mcp_tools(mcp, config, local, sys.stderr) as remote:
        every = {**local, **remote}
        if every:
            if not yes and not all(t.preapproved for t in every.values()):
                raise UsageError("a batch cannot ask before running tools",
                                 hint="pass --yes to let them run (or allow MCP tools in the config)")
            opts.tools = ToolOptions(every, choice=tool_choice, max_rounds=max_rounds,
                                     timeout=tool_timeout, yes=True, call_format=call_format or config.call_format)
        output = None if output == Path("-") else output
        with locks.held(output, str(output)) if output is not None else contextlib.nullcontext():
            _run(load, chosen, items, output, opts, parallel, concurrency, request_timeout)


def _run(load: LoadFlags, chosen: Any, items: list[Any], output: Path | None, opts: Any, parallel: int,
         concurrency: int, request_timeout: float) -> None:
    """The lines on one Backend (a model loaded here, or the served engines): opened here,
    run by core/batch_run.py as far as the backend allows (--parallel, --concurrency)."""
    from hermes_cli.core import batch as batch_mod
    from hermes_cli.core.backends import open_backend, with_call_format
    from hermes_cli.core.batch_run import needs_grammars, run_batch
    from hermes_cli.prompt.call_format import choose

    done = batch_mod.repair_and_read_done(output) if output else set()
    opts_load = load_options(load, chosen, grammars=needs_grammars(items, done, opts))
    # buffered: a served answer cut short is asked again, since nobody watches a batch line stream
    backend = open_backend(opts_load, endpoints=load.endpoints, key_env=load.api_key_env, served_model=load.model,
                           err=sys.stderr, buffered=True, timeout=request_timeout,
                           n_seq_max=parallel + 1 if parallel > 1 else 1)
    try:
        opts.tools = with_call_format(opts.tools, backend)  # calls in this model's format
        opts.call_format = choose(opts.call_format, *backend.model_names())[0]
        n_ctx = backend.n_ctx
        if parallel > 1 and n_ctx is not None and n_ctx // parallel < MIN_SLOT_TOKENS:
            raise UsageError(f"--parallel {parallel} gives each prompt {n_ctx // parallel} of the "
                             f"{n_ctx}-token context; at least {MIN_SLOT_TOKENS} are needed",
                             hint="raise --ctx or lower --parallel")
        summary = _with_writer(load, output, len(items), lambda writer, progress: run_batch(
            backend, items, writer, done, opts, concurrency=concurrency, progress=progress))
    finally:
        backend.close()  # the model, or the served pool's connections
    summary.raise_if_failed()


def _with_writer(load: LoadFlags, output: Path | None, total: int,
                 run: Callable[[Any, Callable[[int, int, int], None] | None], Any]) -> Any:
    """Run the lines into the result writer, with a progress bar on a terminal (not with
    -q); the writer is closed and the summary printed however the run ends."""
    from hermes_cli.core import batch as batch_mod

    writer = batch_mod.ResultWriter(output, sys.stdout)
    progress: Callable[[int, int, int], None] | None = None
    stop: Callable[[], None] = _nothing
    if not load.quiet and sys.stderr.isatty():
        progress, stop = progress_bar(total, sys.stderr)
    try:
        summary = run(writer, progress)
    finally:
        stop()
        writer.close()
    if not load.quiet:
        print(summary.line(), file=sys.stderr)
    return summary




def progress_bar(total_items: int, err: TextIO) -> tuple[Callable[[int, int, int], None], Callable[[], None]]:
    """A rich progress bar on stderr: done/total, tokens/s, ETA."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn("batch"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                        console=Console(file=err), transient=True)
    task = progress.add_task("batch", total=total_items, rate="")
    progress.start()
    started = time.perf_counter()

    def update(done: int, total: int, tokens: int) -> None:
        elapsed = time.perf_counter() - started
        progress.update(task, completed=done, total=total,
                        rate=f"{tokens / elapsed:.1f} tok/s" if elapsed > 0 else "")

    return update, progress.stop


def _nothing() -> None:
    pass


def open_input(spec: str) -> Iterator[TextIO]:
    """The input stream (stdin for `-`), UTF-8 with an optional byte-order mark (as Windows
    editors save it); a missing or unreadable file is a usage error."""
    if spec == "-":
        yield io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig") if hasattr(sys.stdin, "buffer") else sys.stdin
        return
    try:
        fh = open(spec, encoding="utf-8-sig")  # noqa: SIM115 - closed below, after the errors are mapped
    except FileNotFoundError:
        raise UsageError(f"no such input file: {spec}") from None
    except OSError as e:
        raise UsageError(f"cannot read {spec}: {e.strerror}") from None
    with fh:
        yield fh
