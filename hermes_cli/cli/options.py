"""The options `ask`, `chat` and `batch` share, defined once.

A command declares one parameter per group (`sampling: dict[str, Any]`, `load:
LoadFlags`) and `@with_options(SAMPLING, LOADING)` puts the group's options into the
signature Typer reads, then hands the command the values the user gave. Sampling options
default to None in Typer: a command then knows what the user typed, and the defaults come
from the core (`SamplingParams`), which the help text quotes, so they live in one place.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Optional, TypeVar

import typer

from hermes_cli import env
from hermes_cli.engine.params import SamplingParams

if TYPE_CHECKING:
    from hermes_cli.core.config import Config
    from hermes_cli.core.conversation import Conversation
    from hermes_cli.core.loading import LoadOptions
    from hermes_cli.core.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])
_DEFAULTS = SamplingParams()


@dataclass(frozen=True)
class Group:
    """Options that reach a command as one value built by `build` from the values given."""

    param: str
    options: tuple[inspect.Parameter, ...]
    build: Callable[..., Any]

    def with_help(self, **helps: str) -> Group:
        """The same group with other help texts for some options (batch's --seed)."""
        changed = []
        for opt in self.options:
            if opt.name in helps:
                base, info = opt.annotation.__origin__, copy.copy(opt.annotation.__metadata__[0])
                info.help = helps[opt.name]
                opt = opt.replace(annotation=Annotated[base, info])
            changed.append(opt)
        return Group(self.param, tuple(changed), self.build)


def _opt(name: str, annotation: Any, default: Any = None) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=annotation)


def _range(name: str) -> str:
    """" (LOW–HIGH)" from the one limits table, which alone checks the values."""
    from hermes_cli.engine.params import SAMPLING_LIMITS

    _kind, low, high, _nullable = SAMPLING_LIMITS[name]
    if high is None:
        return f" (at least {low:g})"
    return f" ({low:g}–{high:,.0f})" if high > 1000 else f" ({low:g}–{high:g})"


def _given(**values: Any) -> dict[str, Any]:
    """The sampling values the user typed (None: not given)."""
    return {k: v for k, v in values.items() if v is not None}


SAMPLING = Group("sampling", (
    _opt("temperature", Annotated[Optional[float], typer.Option(
        help=f"Sampling temperature{_range('temperature')}; 0 = greedy. Default: {_DEFAULTS.temperature} "
        "(model card).", show_default=False)]),
    _opt("top_p", Annotated[Optional[float], typer.Option(
        help=f"Nucleus sampling{_range('top_p')}. Default: {_DEFAULTS.top_p}.", show_default=False)]),
    _opt("top_k", Annotated[Optional[int], typer.Option(
        help=f"Top-k sampling{_range('top_k')}; 0 = off. Default: {_DEFAULTS.top_k}.", show_default=False)]),
    _opt("min_p", Annotated[Optional[float], typer.Option(
        help=f"Min-p sampling{_range('min_p')}. Default: {_DEFAULTS.min_p}.", show_default=False)]),
    _opt("repeat_penalty", Annotated[Optional[float], typer.Option(
        help=f"Repetition penalty{_range('repeat_penalty')}; 1 = off. Default: {_DEFAULTS.repeat_penalty} "
        "(model card).", show_default=False)]),
    _opt("frequency_penalty", Annotated[Optional[float], typer.Option(
        help=f"Lower a token's logit by this for each time it came in the last 64 tokens"
        f"{_range('frequency_penalty')}; negative raises it (OpenAI's). Default: 0 (off).", show_default=False)]),
    _opt("presence_penalty", Annotated[Optional[float], typer.Option(
        help=f"Lower a token's logit by this once it came in the last 64 tokens{_range('presence_penalty')}; "
        "negative raises it (OpenAI's). Default: 0 (off).", show_default=False)]),
    _opt("max_tokens", Annotated[Optional[int], typer.Option(
        help=f"Stop after this many tokens{_range('max_tokens')}. Default: until the model ends or the "
        "context is full.", show_default=False)]),
    _opt("seed", Annotated[Optional[int], typer.Option(
        help="Seed, for reproducible output. Default: random.", show_default=False)]),
    _opt("fast_forward", Annotated[Optional[bool], typer.Option(
        "--fast-forward/--no-fast-forward", help="JSON and tool calls: take the tokens the "
        "grammar forces without sampling, in one batch. Default: on.", show_default=False)]),
    _opt("think_budget", Annotated[Optional[int], typer.Option(
        help=f"A reasoning model thinks at most this many tokens{_range('think_budget')}, then "
        "</think> is forced and the answer begins (with --schema, --json or tools the grammar holds "
        "from there). Default: no bound.", show_default=False)]),
), _given)


@dataclass(frozen=True)
class LoadFlags:
    """How to load the model, as given on the command line (None: not given)."""

    model: str | None
    endpoints: list[str]
    api_key_env: str
    ctx: int | None
    gpu_layers: int | None
    threads: int | None
    verbose: bool
    quiet: bool


def _load_flags(**values: Any) -> LoadFlags:
    values["endpoints"] = list(values["endpoints"] or env.endpoints())
    return LoadFlags(**values)


LOADING = Group("load", (
    _opt("model", Annotated[Optional[str], typer.Option(
        "--model", "-m", help="PATH.gguf, owner/repo or owner/repo:QUANT; with --endpoint, the "
        "served model's name (default: the one it serves). Default: $HERMES_MODEL or "
        + env.DEFAULT_MODEL_REF, show_default=False)]),
    _opt("endpoints", Annotated[Optional[list[str]], typer.Option(
        "--endpoint", help="An OpenAI-compatible server (vLLM, llama-server, ...): its base URL, or "
        "`local` for the running `hermes serve` (a warm model: no load). "
        "Batch takes several. Default: $HERMES_ENDPOINT.", show_default=False)]),
    _opt("api_key_env", Annotated[str, typer.Option(
        help="The environment variable holding the endpoint's API key (never printed).")],
        "OPENAI_API_KEY"),
    _opt("ctx", Annotated[Optional[int], typer.Option(
        "--ctx", help="Context size in tokens. Default: the model's trained length (capped at "
        "16384); 0 = the full trained length.", show_default=False)]),
    _opt("gpu_layers", Annotated[Optional[int], typer.Option(
        help="Layers to offload to the GPU. Default: all, when llama.cpp has a GPU; -1 = all.",
        show_default=False)]),
    _opt("threads", Annotated[Optional[int], typer.Option(
        help="CPU threads (1–512). Default: the CPUs this process may use (affinity, cgroup quota).",
        show_default=False)]),
    _opt("verbose", Annotated[bool, typer.Option(
        "--verbose", "-v", help="Show llama.cpp's own log on stderr.")], False),
    _opt("quiet", Annotated[bool, typer.Option(
        "--quiet", "-q", help="No download messages or progress bar.")], False),
), _load_flags)


# Options two commands declare alike, defined once (the defaults are the tools loop's own).
MaxRounds = Annotated[int, typer.Option(help="Most tool rounds (per answer) before stopping.", min=0)]
ToolTimeout = Annotated[float, typer.Option(help="Seconds a tool may run.", min=0.1)]
ToolChoice = Annotated[str, typer.Option(
    help="auto, none, required (force a call) or a tool's name (force that tool).")]


PRECEDENCE = ("command line > environment > --role > saved session > config file "
              "(hermes config path) > built-in defaults")

ROLE = Group("role", (
    _opt("role", Annotated[Optional[str], typer.Option(
        "--role", "-r", help="A role from the config file: its system prompt, schema, tools and "
        f"options (`hermes roles` lists them). Precedence: {PRECEDENCE}.", show_default=False)]),
), lambda role: role)


def _call_format(call_format: str | None) -> str | None:
    from hermes_cli.prompt.call_format import AUTO, FORMATS

    if call_format is not None and call_format not in (AUTO, *FORMATS):
        raise typer.BadParameter(f"{call_format!r}: use auto, {', '.join(FORMATS)}", param_hint="--call-format")
    return call_format


CALL_FORMAT = Group("call_format", (
    _opt("call_format", Annotated[Optional[str], typer.Option(
        "--call-format", help="Tool calls written arguments-first (Hermes 2 Pro / Θ's card) or name-first "
        "(Hermes 3 on), or auto: from the model's name (`hermes info` says which). Default: the "
        "config's call_format, auto.", show_default=False)]),
), _call_format)


THINK = Group("think", (
    _opt("think", Annotated[Optional[bool], typer.Option(
        "--think/--no-think", help="A reasoning model (Hermes 4, Qwen3, SmolLM3…): think before answering, or "
        "answer at once (its template's enable_thinking switch; a template without one gets an empty "
        "<think></think>; a served engine gets chat_template_kwargs). Default: the model's own.",
        show_default=False)]),
), lambda think: think)


@dataclass(frozen=True)
class McpFlags:
    servers: list[str]
    use_config: bool


MCP = Group("mcp", (
    _opt("mcp_servers", Annotated[Optional[list[str]], typer.Option(
        "--mcp", help="An MCP server whose tools the model may call: 'COMMAND ARGS…' (stdio), "
        "'NAME=COMMAND ARGS…', or a Streamable HTTP URL (repeatable). Calls ask first unless "
        "--yes.", show_default=False)]),
    _opt("no_mcp", Annotated[bool, typer.Option(
        "--no-mcp", help="Do not start the config file's [mcp.servers] (only --mcp ones).")], False),
), lambda mcp_servers, no_mcp: McpFlags(list(mcp_servers or []), not no_mcp))


def with_options(*groups: Group) -> Callable[[F], F]:
    """Expand each group's parameter of the decorated command into the group's options."""

    def decorate(fn: F) -> F:
        sig = inspect.signature(fn, eval_str=True)
        by_param = {g.param: g for g in groups}
        params: list[inspect.Parameter] = []
        for p in sig.parameters.values():
            group = by_param.get(p.name)
            params.extend(group.options if group else [p])
        # Typer passes every value by keyword: keyword-only keeps any order of defaults valid.
        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for group in groups:
                values = {o.name: kwargs.pop(o.name) for o in group.options}
                kwargs[group.param] = group.build(**values)
            return fn(*args, **kwargs)

        wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return wrapper  # type: ignore[return-value]

    return decorate


def settings(sampling: dict[str, Any], load: LoadFlags, *, role: str | None = None,
             system: str | None = None, session: Conversation | None = None,
             config: Config | None = None) -> Settings:
    """What the command runs with: the values typed here over every lower layer."""
    from hermes_cli.core.config import load_config
    from hermes_cli.core.settings import Given, resolve

    given = Given(model=load.model, system=system, sampling=sampling, ctx=load.ctx,
                  gpu_layers=load.gpu_layers, threads=load.threads, role=role)
    return resolve(given, config if config is not None else load_config(), session)


def load_options(flags: LoadFlags, chosen: Settings, *, grammars: bool = False,
                 prompt_cache: bool = False) -> LoadOptions:
    """How to load the model, in one step from what was typed and what was resolved;
    `grammars` and `prompt_cache` are what the command knows of its replies."""
    from hermes_cli.core.loading import LoadOptions

    return LoadOptions(model=chosen.model, n_ctx=chosen.ctx, n_gpu_layers=chosen.gpu_layers,
                       n_threads=chosen.threads, verbose=flags.verbose, quiet=flags.quiet,
                       gpu_hint=chosen.gpu_hint, grammars=grammars, prompt_cache=prompt_cache)



@contextlib.contextmanager
def mcp_tools(flags: McpFlags, config: Config, local: dict[str, Any], err: Any) -> Iterator[dict[str, Any]]:
    """Start the command's MCP servers; yield their tools (named beside `local`); stop them
    all when the command is done, whatever happens (no server outlives hermes)."""
    if not flags.servers and not (flags.use_config and config.mcp):
        yield {}  # no server: not even the SDK's event loop is imported
        return
    from hermes_cli.core.mcp_tools import toolset_for

    def warn(message: str) -> None:
        err.write(f"warning: {message}\n")
        err.flush()

    toolset = toolset_for(flags.servers, config, use_config=flags.use_config, warn=warn)
    if toolset is None:
        yield {}
        return
    try:
        toolset.start()
        for line in toolset.clashes(local):
            warn(line)
        yield toolset.tools(local)
    finally:
        toolset.close()
