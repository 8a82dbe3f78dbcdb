"""How to reach one MCP server, from `--mcp` or a `[mcp.servers.NAME]` table. Light on
purpose: the config file reads these on every command, before anything is started."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from hermes_cli.errors import UsageError


@dataclass
class ServerSpec:
    """How to reach one server (from `--mcp` or a `[mcp.servers.NAME]` table)."""

    name: str
    command: str | None = None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    url: str | None = None
    allow: list[str] = field(default_factory=list)  # tools that run without asking
    timeout: float | None = None  # seconds per call

    def describe(self) -> str:
        return self.url or shlex.join([self.command or "", *self.args])


_NAME = re.compile(r"^([A-Za-z][\w.-]*)=(.*)$", re.S)


def spec_from_option(text: str) -> ServerSpec:
    """`--mcp 'CMD ARGS…'`, `--mcp 'NAME=CMD ARGS…'` or `--mcp URL` (Streamable HTTP)."""
    named = _NAME.match(text.strip())
    name, rest = (named.group(1), named.group(2)) if named else (None, text.strip())
    if re.match(r"^https?://", rest):
        return ServerSpec(name or _name_from_url(rest), url=rest)
    try:
        words = shlex.split(rest)
    except ValueError as e:
        raise UsageError(f"--mcp {text!r}: {e}") from None
    if not words:
        raise UsageError("--mcp needs a command to start (or a URL)")
    return ServerSpec(name or _name_from_command(words), command=words[0], args=words[1:])


def _name_from_command(words: list[str]) -> str:
    """`python weather.py` -> weather; `npx -y @scope/server-git` -> server-git; `uvx mcp-x` -> mcp-x."""
    program = Path(words[0]).name
    rest = [w for w in words[1:] if not w.startswith("-")]
    if re.match(r"^(python[\d.]*|node|deno|bun|npx|uvx|pipx|uv)$", program) and rest:
        target = rest[1] if program == "uv" and rest[0] == "run" and len(rest) > 1 else rest[0]
        if program.startswith("python") and target == "-m" and len(rest) > 1:
            target = rest[1]
        return re.sub(r"\.(py|js|mjs|ts)$", "", target.rsplit("/", 1)[-1].split("@")[0] or target) or program
    return program


def _name_from_url(url: str) -> str:
    host = re.sub(r"^https?://", "", url).split("/", 1)[0]
    return re.sub(r"[^\w-]", "-", host)
