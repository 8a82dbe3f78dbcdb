"""`hermes chat`: load the model, then hand the terminal to the REPL."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Annotated, Any, Optional

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
    McpFlags,
    load_options,
    settings,
    with_options,
)


@guard_stdout
@with_options(SAMPLING, LOADING, ROLE, MCP, CALL_FORMAT, THINK)
def chat(
    *,
    system: Annotated[Optional[str], typer.Option("--system", "-s", help="System prompt.")] = None,
    sampling: dict[str, Any],
    load: LoadFlags,
    role: Optional[str],
    mcp: McpFlags,
    call_format: Optional[str],
    think: Optional[bool],
    plain: Annotated[bool, typer.Option("--plain", help="Plain text, no Markdown or colour "
                                        "(also when NO_COLOR is set).")] = False,
    continue_: Annotated[bool, typer.Option("--continue", "-c",
                                            help="Resume the most recent conversation.")] = False,
    resume: Annotated[Optional[str], typer.Option(
        help="Resume the conversation with this id (see `hermes history`).",
        show_default=False)] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Run tool calls without asking.")] = False,
) -> None:
    """Chat in the terminal: streaming Markdown, slash-commands (/help), saved sessions.

    Settings come from, strongest first: the command line > the environment > --role >
    the resumed session > the config file > the built-in defaults.
    """
    from hermes_cli.core import locks, sessions
    from hermes_cli.core.config import load_config

    if continue_ and resume:
        raise typer.BadParameter("--continue and --resume exclude each other")
    config = load_config()
    saved = sessions.load(resume) if continue_ or resume else None
    lock = locks.Holder()  # one writer per conversation: held by the chat from here on
    try:
        if saved is not None:  # read it again under the lock
            lock.hold(sessions.path_for(saved.id), f"conversation {saved.id}")
            saved = sessions.load(saved.id)
        _chat(_Asked(saved, sampling, load, role, system, config, plain, mcp, yes, lock,
                     call_format or config.call_format, think))
    finally:
        lock.release()


@dataclass(frozen=True)
class _Asked:
    """What the command line (and the config it read, the lock it holds) asks of the chat."""

    saved: Any  # the conversation resumed, or None
    sampling: dict[str, Any]
    load: LoadFlags
    role: str | None
    system: str | None
    config: Any
    plain: bool
    mcp: McpFlags
    yes: bool
    lock: Any
    call_format: str
    think: bool | None


def _chat(asked: _Asked) -> None:
    saved, load, config, mcp = asked.saved, asked.load, asked.config, asked.mcp
    from hermes_cli.chat.repl import Repl, make_keyboard
    from hermes_cli.core.backends import open_backend
    from hermes_cli.core.chat_session import ChatSession
    from hermes_cli.core.conversation import Conversation
    from hermes_cli.core.mcp_tools import toolset_for

    chosen = settings(asked.sampling, load, role=asked.role, system=asked.system, session=saved, config=config)
    if saved is not None:
        conversation = saved
        conversation.system, conversation.params = chosen.system, chosen.params
    else:
        conversation = Conversation(system=chosen.system, params=chosen.params)
    plain = asked.plain or env.no_color()
    repl = Repl(console=_console(plain), keyboard=make_keyboard(env.data_dir() / "history"), plain=plain)

    def warn(message: str) -> None:
        sys.stderr.write(f"warning: {message}\n")

    toolset = toolset_for(mcp.servers, config, use_config=mcp.use_config, warn=warn)
    backend: Any = None
    try:
        if toolset is not None:
            toolset.start()  # before the model loads: a server that fails is said first
            toolset.warn = repl.error
        opts = load_options(load, chosen)
        backend = open_backend(opts, endpoints=load.endpoints, key_env=load.api_key_env,
                               served_model=load.model, err=sys.stderr)
        conversation.model = backend.model
        if asked.think is not None:
            backend.think(asked.think)
        session = ChatSession(backend, conversation, warn=repl.error, confirm=repl.confirm,
                              auto_approve=asked.yes, config=config, load_options=opts, role=chosen.role,
                              mcp=toolset, lock=asked.lock, call_format=asked.call_format, status=sys.stderr)
        if toolset is not None:
            for line in toolset.clashes(session.tools):
                repl.say(line, style="yellow")
        code = repl.run(session)
        backend = session.backend  # /model may have replaced it
    finally:
        if backend is not None:
            backend.close()  # the model, or the served pool's connections
        if toolset is not None:
            toolset.close()  # no server outlives the chat
    raise typer.Exit(code)


def _console(plain: bool) -> Any:
    """The chat's console. On a terminal its size is the terminal's, read again as the
    window changes: rich takes an exported COLUMNS/LINES as a fixed size, and a shell that
    exports them (zsh, a user's profile) left the chat drawing 100-column frames in a
    50-column window, every streamed paragraph then shown twice."""
    import os

    from rich.console import Console

    environ = dict(os.environ)
    if sys.stdout.isatty():
        environ.pop("COLUMNS", None)
        environ.pop("LINES", None)
    return Console(no_color=plain, highlight=False, _environ=environ)
