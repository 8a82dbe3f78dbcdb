"""The `hermes` Typer app: wiring only. Each command lives in its own module here and
calls one core function; `cli.main` is the one place errors become messages.

Commands load lazily: `hermes --help` lists them from the table below and imports no
command module (nor llama_cpp, rich, prompt_toolkit or huggingface_hub); `hermes ask`
imports only `cli/ask.py`. A test checks the table against each command's docstring.
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup
from typer.models import CommandInfo

from hermes_cli import __version__

# name -> (module in hermes_cli.cli, function, the first line of its docstring)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "ask": ("ask", "ask", "Ask one question; the answer streams to stdout."),
    "chat": ("chat", "chat", "Chat in the terminal: streaming Markdown, slash-commands (/help), saved sessions."),
    "batch": ("batch", "batch", "Answer many prompts with one loaded model; one JSON result per line, resumable."),
    "cmd": ("cmd", "cmd", "Write one shell command for a request in words; run it only when you say so."),
    "serve": ("serve", "serve", "Serve the model over an OpenAI-compatible API: a warm model for any client."),
    "download": ("models", "download", "Download a model (and verify it) without chatting; print its local path."),
    "models": ("models", "models", "List a repository's quants and the GGUF models already cached."),
    "info": ("info", "info", "The llama.cpp build (backends, GPU offload), this machine, and the model's metadata."),
    "history": ("history", "history", "List saved conversations (resume one with `hermes chat --resume ID`)."),
    "export": ("history", "export", "Write one saved conversation out as Markdown or JSON."),
    "config": ("config_cmd", "config", "Print the config file's path, open it in $EDITOR, or show it."),
    "roles": ("config_cmd", "roles", "List the roles in the config file (use one with --role NAME or /role NAME)."),
}


def command_function(name: str) -> Any:
    module, attr, _ = COMMANDS[name]
    return getattr(importlib.import_module(f"hermes_cli.cli.{module}"), attr)


def exit_codes_epilog() -> str:
    """Every command's help ends with the exit statuses, from the one table (errors.py)."""
    from hermes_cli.errors import EXIT_CODES

    return "Exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items()) + "."


class LazyGroup(TyperGroup):
    """Builds a command's click object only when that command is used."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.commands[cmd_name] = typer.main.get_command_from_info(
                CommandInfo(name=cmd_name, callback=command_function(cmd_name), epilog=exit_codes_epilog()),
                pretty_exceptions_short=True, rich_markup_mode=None)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        limit = formatter.width - 6 - max(map(len, COMMANDS))
        rows = [(name, help if len(help) <= limit else help[: limit - 3].rstrip() + "...")
                for name, (_, _, help) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


app = typer.Typer(
    cls=LazyGroup,
    name="hermes",
    help="Chat with Hermes 2 Θ and any GGUF chat model, on llama.cpp or a served engine.",
    pretty_exceptions_enable=False,
    invoke_without_command=True,
    # Plain click help: rich help formatting imports rich.markdown and costs start-up time.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


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
    """Chat with Hermes 2 Θ and any GGUF chat model, on llama.cpp or a served engine.

    Plain `hermes` on a terminal opens the chat; `hermes COMMAND --help` for each command.
    """
    if ctx.invoked_subcommand is None:
        if sys.stdin is not None and sys.stdin.isatty() and sys.stdout.isatty():
            ctx.invoke(LazyGroup.get_command(ctx.command, ctx, "chat"))  # type: ignore[arg-type]
        else:
            print(ctx.get_help())
        raise typer.Exit()
