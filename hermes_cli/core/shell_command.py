"""Shell command mode (`hermes cmd`): a request in words becomes one command line for this
machine's shell and OS, and, when asked, an explanation of it.

The command comes as JSON mode's answer to a one-field schema (`{"command": "…"}`, one
line, no leading blank): the grammar holds a local model to it, a served engine's answer
is validated and retried the same way, and no prose or code fence can reach the shell.
What is run, and whether, is the front end's: this module never runs anything.
"""

from __future__ import annotations

import os
import platform
import shlex
from dataclasses import dataclass
from pathlib import Path

from hermes_cli.core.backends import Backend
from hermes_cli.core.turn import run
from hermes_cli.engine.params import SamplingParams
from hermes_cli.errors import OutputContractError
from hermes_cli.modes.events import Logic, text_reply
from hermes_cli.modes.json_mode import JsonMode, json_reply
from hermes_cli.prompt.messages import Message

MAX_COMMAND = 2000  # characters: a command line longer than this is not one a person reads
COMMAND_SCHEMA = {
    "type": "object",
    "properties": {"command": {"type": "string", "minLength": 1, "maxLength": MAX_COMMAND,
                               "pattern": "^[^\\s][^\\n\\r]*$"}},
    "required": ["command"], "additionalProperties": False,
}


@dataclass(frozen=True)
class Machine:
    """What the command is for: the OS (with its distribution), the shell, the folder."""

    os: str
    shell: str
    cwd: str

    @property
    def shell_name(self) -> str:
        return Path(self.shell).name


def this_machine() -> Machine:
    system = platform.system()
    if system == "Linux":
        pretty = _os_release()
        system = f"Linux ({pretty})" if pretty else "Linux"
    elif system == "Darwin":
        system = f"macOS {platform.mac_ver()[0]}".strip()
    shell = os.environ.get("SHELL") or ("cmd.exe" if os.name == "nt" else "/bin/sh")
    return Machine(system, shell, os.getcwd())


def _os_release() -> str | None:
    try:
        for line in Path("/etc/os-release").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.partition("=")[2].strip().strip('"') or None
    except OSError:
        pass
    return None


def system_prompt(machine: Machine) -> str:
    return (f"You turn a request into one shell command. The command runs in {machine.shell_name} "
            f"({machine.shell}) on {machine.os}, in the folder {machine.cwd}. Write exactly one line "
            "that can be pasted into that shell and run as it is: use pipes, && or ; to join steps; "
            "no explanation, no comments, no placeholders the user must fill in unless the request "
            "leaves no other way.")


def command_logic(request: str, machine: Machine, params: SamplingParams) -> Logic:
    mode = JsonMode(COMMAND_SCHEMA, "hermes cmd")
    messages = [Message("system", mode.system_prompt(system_prompt(machine))), Message("user", request)]
    return json_reply(messages, mode, params)


def propose(backend: Backend, request: str, machine: Machine, params: SamplingParams) -> str:
    """The command for `request` (OutputContractError when no valid one came)."""
    reply = run(backend, command_logic(request, machine, params))
    command = reply.value["command"] if isinstance(reply.value, dict) else None
    if not isinstance(command, str) or not command.strip():
        raise OutputContractError("the model wrote no command")
    return command.strip()


def explanation_logic(command: str, machine: Machine, params: SamplingParams) -> Logic:
    """A short explanation of `command`, part by part, as free text."""
    return text_reply([
        Message("system", f"You explain shell commands for {machine.shell_name} on {machine.os}: "
                "briefly, part by part, and say plainly what it changes or deletes."),
        Message("user", f"Explain this command:\n{command}")], params)


def shell_argv(machine: Machine, command: str) -> list[str]:
    """How the user's shell runs one command line."""
    if machine.shell_name.lower() in ("cmd.exe", "cmd"):
        return [machine.shell, "/c", command]
    return [machine.shell, "-c", command]


def quoted(command: str) -> str:
    """The command as one shell word (for a message that shows it inside others)."""
    return shlex.quote(command)
