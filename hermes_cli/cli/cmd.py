"""`hermes cmd`: a request in words, one shell command for this machine, run only when the
person at the terminal says so."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Annotated, Any, Optional

import typer

from hermes_cli.cli.options import LOADING, SAMPLING, LoadFlags, load_options, settings, with_options
from hermes_cli.errors import UsageError

QUESTION = "[r]un  [e]dit  [c]opy  e[x]plain  [q]uit: "
EXPLAIN_TOKENS = 300
NOT_RUN = 1  # the exit status when the user cancels (nothing ran)


@with_options(SAMPLING, LOADING)
def cmd(
    request: Annotated[Optional[list[str]], typer.Argument(
        metavar="REQUEST", help="What the command should do, in words (or piped on stdin).",
        show_default=False)] = None,
    *,
    sampling: dict[str, Any],
    load: LoadFlags,
) -> None:
    """Write one shell command for a request in words; run it only when you say so.

    The command is written for this machine's shell ($SHELL) and OS, as one line (a
    grammar holds the model to it). On a terminal it is shown and you choose: run it (in
    your shell, its exit status becomes hermes's), edit it first, copy it, have it
    explained, or quit (exit 1, nothing run). Piped, or with no terminal to ask, the
    command is printed and never run: `$(hermes cmd …)` is yours to use.
    """
    from hermes_cli.cli.question_inputs import read_stdin
    from hermes_cli.core.backends import open_backend
    from hermes_cli.core.config import load_config
    from hermes_cli.core.shell_command import propose, this_machine

    text = " ".join(request or []).strip() or (read_stdin() or "").strip()
    if not text:
        raise UsageError("say what the command should do: hermes cmd \"find files over 100 MB\"")
    chosen = settings(sampling, load, config=load_config())
    opts = load_options(load, chosen, grammars=True)
    machine = this_machine()
    backend = open_backend(opts, endpoints=load.endpoints, key_env=load.api_key_env, served_model=load.model,
                           err=sys.stderr)
    try:
        command = propose(backend, text, machine, chosen.params)
        if not sys.stdout.isatty():
            print(command)  # for the caller to use; nothing is run
            raise typer.Exit(0)
        raise typer.Exit(_choose(backend, command, machine, chosen.params))
    finally:
        backend.close()


def _choose(backend: Any, command: str, machine: Any, params: Any) -> int:
    """Show the command and act on the terminal's answer until it is run, copied or dropped."""
    from hermes_cli.chat.tty import ask_terminal
    from hermes_cli.chat.visible import visible

    while True:
        sys.stderr.write(f"\n  {visible(command)}\n\n")
        sys.stderr.flush()
        answer = ask_terminal(QUESTION)
        if answer is None:  # nobody to ask: print it, never run it
            print(command)
            return 0
        choice = answer.strip().lower()[:1]
        if choice == "r":
            return _run(machine, command)
        if choice == "e":
            command = _edit(command) or command
        elif choice == "c":
            _copy(command)
            return 0
        elif choice == "x":
            _explain(backend, command, machine, params)
        elif choice == "q":
            sys.stderr.write("not run\n")
            return NOT_RUN


def _run(machine: Any, command: str) -> int:
    """The command in the user's shell, on this terminal; its exit status (128+N when a
    signal ended it, as shells say)."""
    from hermes_cli.core.shell_command import shell_argv

    sys.stdout.flush()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the command's, as in a shell
    try:
        status = subprocess.run(shell_argv(machine, command), check=False).returncode
    except OSError as e:
        raise UsageError(f"cannot start {machine.shell}: {e.strerror or e}") from None
    finally:
        signal.signal(signal.SIGINT, previous)
    return 128 - status if status < 0 else status


def _edit(command: str) -> str | None:
    """The command in a line editor on the terminal, prefilled; None when left empty."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.input import create_input
    from prompt_toolkit.output import create_output

    with open("/dev/tty", "r+b", buffering=0) as tty:  # the terminal, whatever stdin is
        reader = os.fdopen(os.dup(tty.fileno()), "r")
        writer = os.fdopen(os.dup(tty.fileno()), "w")
        try:
            session: PromptSession[str] = PromptSession(input=create_input(reader), output=create_output(writer))
            edited = session.prompt("edit> ", default=command)
        except (EOFError, KeyboardInterrupt):
            return None
        finally:
            reader.close()
            writer.close()
    return edited.strip() or None


def _copy(command: str) -> None:
    from hermes_cli.chat.clipboard import copy_to_clipboard

    def raw(data: str) -> None:
        with open("/dev/tty", "w") as tty:
            tty.write(data)

    how = copy_to_clipboard(command, raw)
    sys.stderr.write(f"copied ({how})\n")


def _explain(backend: Any, command: str, machine: Any, params: Any) -> None:
    """The explanation, streamed to the terminal (stderr: stdout stays the command's)."""
    from dataclasses import replace

    from hermes_cli.chat.visible import visible
    from hermes_cli.core.shell_command import explanation_logic
    from hermes_cli.core.turn import Turn
    from hermes_cli.modes.events import TextDelta

    limit = params.max_tokens or EXPLAIN_TOKENS
    for event in Turn.of(backend, explanation_logic(command, machine, replace(params, max_tokens=limit))):
        if isinstance(event, TextDelta):
            sys.stderr.write(visible(event.text))
            sys.stderr.flush()
    sys.stderr.write("\n")
