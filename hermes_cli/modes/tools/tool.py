"""What a tool is, independent of where it came from (a Python function, a JSON
definition, an MCP server)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_ROUNDS = 5
DEFAULT_TIMEOUT = 30.0


@dataclass
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    function: Callable[..., Any] | None = None  # None: a schema from --tools-json
    # (file, function name) for a function from a tools file: a child process started
    # with `spawn` (macOS, Windows) imports the file again to find it.
    origin: tuple[str, str] | None = None
    # A tool run elsewhere (an MCP server): (arguments, timeout) -> (ok, content).
    remote: Callable[[dict[str, Any], float], tuple[bool, Any]] | None = None
    server: str | None = None  # the MCP server it comes from, for messages
    preapproved: bool = False  # on the config's allow list: runs without asking
    timeout: float | None = None  # the server's own per-call limit, over --tool-timeout

    @property
    def runnable(self) -> bool:
        """False for a schema from --tools-json: its calls are handed to the caller."""
        return self.function is not None or self.remote is not None

    def definition(self) -> dict[str, Any]:
        return {"type": "function", "function": {
            "name": self.name, "description": self.description, "parameters": self.parameters}}

