"""`hermes chat`: load the model, then hand the terminal to the REPL."""

from __future__ import annotations

import sys
from typing import Annotated, Any, Optional

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


@guard_stdout
@with_options(SAMPLING, LOADING)
def chat(
    *,
    system: Annotated[Optional[str], typer.Option("--system", "-s", help="System prompt.")] = None,
    sampling: dict[str, Any],
    load: LoadFlags,
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

    from hermes_cli.chat.repl import Repl, make_session
    from hermes_cli.core import sessions
    from hermes_cli.core.conversation import Conversation
    from hermes_cli.core.loading import load_engine

    if continue_ and resume:
        raise typer.BadParameter("--continue and --resume exclude each other")
    model = load.model
    if continue_ or resume:
        conversation = sessions.load(resume)
        if system is not None:
            conversation.system = system
        model = model or conversation.model or None
    else:
        conversation = Conversation(system=system, params=sampling_params(sampling))
    opts = load_options(load)
    opts.model = model or env.default_model_ref()
    conversation.model = opts.model
    plain = plain or env.no_color()
    console = Console(no_color=plain, highlight=False)
    engine = load_engine(opts, err=sys.stderr)
    session = make_session(env.data_dir() / "history")
    raise typer.Exit(Repl(engine, conversation, console=console, session=session,
                          plain=plain).run())
