"""Every MCP server of one command: started together, their tools as hermes Tools with
unique names, `/mcp` status and restart, and all of them stopped when hermes exits.

A tool keeps its own name unless another server, or one of the user's `--tools`
functions, has the same one: then each server's copy is offered as `server__tool`, and
the command says so. A server that fails to start, or dies later, is one line naming it
and why; the chat goes on with the other tools.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from hermes_cli import env
from hermes_cli.errors import UsageError
from hermes_cli.mcp_servers.loop import LoopThread
from hermes_cli.mcp_servers.server import McpServer, RemoteTool
from hermes_cli.mcp_servers.spec import ServerSpec
from hermes_cli.modes.tools.tool import Tool

SEPARATOR = "__"


@dataclass(frozen=True)
class ServerStatus:
    name: str
    state: str
    where: str
    tools: list[str]  # as offered to the model
    error: str | None


class McpToolset:
    """The servers of one command. `warn` receives one line per server that fails."""

    def __init__(self, specs: Iterable[ServerSpec], *, warn: Callable[[str], None] = lambda _m: None) -> None:
        self.servers: dict[str, McpServer] = {}
        self.warn = warn
        self._loop: LoopThread | None = None
        self._local: set[str] = set()
        for spec in specs:
            if spec.name in self.servers:
                raise UsageError(f"two MCP servers are named {spec.name!r}",
                                 hint="name them: --mcp 'NAME=COMMAND ARGS…'")
            self.servers[spec.name] = McpServer(spec, self._ensure_loop())
        atexit.register(self.close)  # no orphans, however the command ends

    def _ensure_loop(self) -> LoopThread:
        if self._loop is None:
            self._loop = LoopThread()
        return self._loop

    def __bool__(self) -> bool:
        return bool(self.servers)

    def start(self, names: Iterable[str] | None = None) -> None:
        """Start servers together (each may take a second: they overlap); report failures."""
        chosen = [self.servers[n] for n in (names or self.servers)]
        pending = [(server, server.begin()) for server in chosen]
        timeout = env.mcp_start_timeout()
        for server, ready in pending:
            if not server.finish_start(ready, timeout):
                self.warn(f"MCP server {server.name} failed: {server.error}; going on without its tools")

    def restart(self, name: str) -> McpServer:
        server = self.servers.get(name)
        if server is None:
            raise UsageError(f"no MCP server {name!r} (servers: {', '.join(self.servers) or 'none'})")
        server.stop()
        self.start([name])
        return server

    def close(self) -> None:
        for server in self.servers.values():
            server.stop()
        if self._loop is not None:
            self._loop.close()
            self._loop = None
        atexit.unregister(self.close)

    # -- the tools --------------------------------------------------------------------------

    def tools(self, local: Iterable[str] = ()) -> dict[str, Tool]:
        """The ready servers' tools, named uniquely beside the `local` tool names."""
        local = set(local)
        owners: dict[str, int] = {}
        for server in self._ready():
            for t in server.tools:
                owners[t.name] = owners.get(t.name, 0) + 1
        out: dict[str, Tool] = {}
        for server in self._ready():
            for t in server.tools:
                clash = owners[t.name] > 1 or t.name in local
                name = f"{server.name}{SEPARATOR}{t.name}" if clash else t.name
                out[name] = self._tool(server, t, name)
        return out

    def clashes(self, local: Iterable[str] = ()) -> list[str]:
        """One line per renamed tool, for the user."""
        local = set(local)
        seen: dict[str, list[str]] = {}
        for server in self._ready():
            for t in server.tools:
                seen.setdefault(t.name, []).append(server.name)
        lines = []
        for tool, servers in seen.items():
            if len(servers) > 1 or tool in local:
                others = ["--tools"] if tool in local else []
                lines.append(f"tool {tool} is offered by {', '.join(others + servers)}: the MCP ones are "
                             + ", ".join(f"{s}{SEPARATOR}{tool}" for s in servers))
        return lines

    def _ready(self) -> list[McpServer]:
        return [s for s in self.servers.values() if s.state == "ready"]

    def _tool(self, server: McpServer, remote: RemoteTool, name: str) -> Tool:
        def call(arguments: dict[str, Any], timeout: float) -> tuple[bool, Any]:
            ok, content = server.call(remote.name, arguments, timeout)
            if server.state == "crashed":
                self.warn(f"MCP server {server.name} stopped: {server.error}; going on without its tools "
                          f"(/mcp restart {server.name})")
            return ok, content

        schema = remote.input_schema if remote.input_schema.get("type") == "object" else {
            "type": "object", "properties": {}}
        return Tool(name, remote.description or f"{remote.name} (from the MCP server {server.name})",
                    schema, remote=call, server=server.name,
                    preapproved=remote.name in server.spec.allow or name in server.spec.allow,
                    timeout=server.spec.timeout)

    def status(self) -> list[ServerStatus]:
        """Each server as it is now: ready ones are pinged first (a killed one is crashed)."""
        for server in self.servers.values():
            server.probe()
        offered = self.tools()
        out = []
        for server in self.servers.values():
            names = [n for n, t in offered.items() if t.server == server.name]
            out.append(ServerStatus(server.name, server.state, server.spec.describe(), names, server.error))
        return out

