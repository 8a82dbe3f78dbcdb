"""What a tool is, independent of where it came from (a Python function, a JSON
definition, later an MCP server)."""

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

    def definition(self) -> dict[str, Any]:
        return {"type": "function", "function": {
            "name": self.name, "description": self.description, "parameters": self.parameters}}
